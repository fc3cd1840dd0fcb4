"""Per-call harness overhead of tunewise against a bare `AsyncOpenAI` loop, same server, same concurrency.

    .venv/bin/python bench/harness_overhead.py [--calls N] [--concurrency C] [--repeats R] [--profile]

The server is tests/openai_server.py (a real OpenAI-compatible HTTP server with a scripted model),
started in a separate *process*, so `time.process_time()` in this process is client CPU only.
Contenders, run in the same process, interleaved, R times:

  bare        AsyncOpenAI(max_retries=0) + asyncio.Semaphore(C) + gather over N distinct requests
  tw fresh    tunewise.run(task.yaml) with an empty cache (request building, SQLite cache lookup and
              write, call log, results.jsonl append, metric, summary, reports: nothing subtracted)
  tw cached   the same task again on the same database: every call a cache hit, zero requests sent

Each contender also runs with 1 example: that is its fixed start-up part, and the per-call figure
is (T(N) - T(1)) / (N - 1). Ratios are taken inside one repeat (side by side), then the median
over repeats is shown with its range. See bench/README.md for how to read them.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from tables import median, ratio, table  # noqa: E402  (bench/ is on sys.path when a script runs)

MODEL = "scripted"
INSTRUCTIONS = "Answer the question with the name of the capital."


# --------------------------------------------------------------------------------------------------
# The server, in its own process (spawned: the child imports only tests/openai_server.py).


# socketserver listens with a backlog of 5 (`request_queue_size`); tests/openai_server.py keeps that
# default. At concurrency > 5 on a busy machine the accept queue overflows: connections stall on SYN
# retransmits and some die with "Connection error" (ReadError) — measured: 11 of 60 bursts of 16
# requests failed and the bursts took 3.6x longer; with a backlog of 128, 0 of 60. The bench raises it
# in its own server process (a class attribute, same for every contender); tests/ is left as it is.
LISTEN_BACKLOG = 128


def _serve(conn: Any) -> None:
    import openai_server
    from openai_server import OpenAITestServer

    openai_server._Server.request_queue_size = LISTEN_BACKLOG
    with OpenAITestServer(max_lifetime_s=4 * 3600) as srv:
        conn.send(srv.base_url)
        while True:
            try:
                cmd, arg = conn.recv()
            except (EOFError, OSError):  # the bench died: go away with it
                return
            if cmd == "stats":
                with srv.log.lock:
                    n = len(srv.log.entries)
                    ok = sum(1 for _, s, _ in srv.log.entries if s == 200)
                conn.send((n, ok, time.process_time()))
            elif cmd == "digests":
                start, end = arg
                with srv.log.lock:
                    conn.send([d for d, _, _ in srv.log.entries[start:end]])
            elif cmd == "stop":
                conn.send(None)
                return


@dataclass
class ServerStats:
    requests: int
    ok: int
    cpu_s: float


class ServerProcess:
    def __init__(self) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), daemon=True, name="bench-openai-server")
        self._proc.start()
        child.close()
        if not self._conn.poll(60):
            self._proc.kill()
            raise RuntimeError("the server process did not start within 60 s")
        self.base_url: str = self._conn.recv()

    def _ask(self, cmd: str, arg: Any = None) -> Any:
        self._conn.send((cmd, arg))
        return self._conn.recv()

    def stats(self) -> ServerStats:
        return ServerStats(*self._ask("stats"))

    def digests(self, start: int, end: int) -> list[str]:
        return self._ask("digests", (start, end))

    def stop(self) -> None:
        try:
            self._ask("stop")
        finally:
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()


# --------------------------------------------------------------------------------------------------
# The workload: N distinct questions the scripted model knows (the country is the last word).


@dataclass(frozen=True)
class Item:
    id: str
    question: str
    answer: str


def make_items(n: int) -> list[Item]:
    from openai_server import CAPITALS

    countries = sorted(CAPITALS)
    out = []
    for i in range(n):
        country = countries[i % len(countries)]
        out.append(Item(f"q{i:06d}", f"Question {i}: what is the capital of {country}?", CAPITALS[country]))
    return out


def write_task(folder: Path, items: list[Item], base_url: str, concurrency: int) -> Path:
    """A task folder: data.jsonl (every row in the test split) and task.yaml with one zero_shot arm."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "data.jsonl").open("w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps({"id": it.id, "question": it.question, "answer": it.answer, "split": "test"}) + "\n")
    (folder / "task.yaml").write_text(
        "name: bench\n"
        f"instructions: {json.dumps(INSTRUCTIONS)}\n"
        "data:\n"
        "  path: data.jsonl\n"
        "  input: question\n"
        "  output: answer\n"
        "  id: id\n"
        "  split_field: split\n"
        "metric: contains\n"
        "model:\n"
        f"  uri: openai:{MODEL}\n"
        f"  base_url: {json.dumps(base_url)}\n"
        f"  max_concurrency: {concurrency}\n"
        "arms:\n"
        "  - zero_shot\n",
        encoding="utf-8",
    )
    return folder / "task.yaml"


# --------------------------------------------------------------------------------------------------
# Contenders. Each is a plain function doing one whole run (its own event loop, its own client).


async def _bare(base_url: str, items: list[Item], concurrency: int) -> list[str]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)
    slots = asyncio.Semaphore(concurrency)

    async def one(item: Item) -> str:
        async with slots:
            r = await client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": item.question}],
                temperature=0.0,
                max_tokens=256,
            )
            return r.choices[0].message.content or ""

    try:
        return await asyncio.gather(*(one(it) for it in items))
    finally:
        await client.close()


def run_bare(base_url: str, items: list[Item], concurrency: int) -> Callable[[], Any]:
    return lambda: asyncio.run(_bare(base_url, items, concurrency))


def run_tunewise(task_yaml: Path, runs_dir: Path) -> Callable[[], Any]:
    def go() -> Any:
        import tunewise

        return tunewise.run(task_yaml, tunewise.RunOptions(runs_dir=runs_dir))

    return go


# --------------------------------------------------------------------------------------------------
# Measuring.


@dataclass
class Sample:
    wall_s: float
    cpu_s: float
    requests: int
    server_cpu_s: float
    first_request: int  # index into the server log


def measure(server: ServerProcess, fn: Callable[[], Any]) -> tuple[Sample, Any]:
    gc.collect()
    before = server.stats()
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    c1, w1 = time.process_time(), time.perf_counter()
    after = server.stats()
    if after.ok - before.ok != after.requests - before.requests:
        raise AssertionError("the server answered something other than 200: the sides would not be equal")
    return Sample(w1 - w0, c1 - c0, after.requests - before.requests, after.cpu_s - before.cpu_s, before.requests), out


def check_tunewise(outcome: Any, n: int, *, cached: bool) -> None:
    (arm,) = outcome.summary.arms
    want_cached = n if cached else 0
    if (arm.n, arm.errors, arm.calls, arm.cached_calls) != (n, 0, n, want_cached):
        raise AssertionError(
            f"tunewise {'cached' if cached else 'fresh'} run: n={arm.n} errors={arm.errors} calls={arm.calls}"
            f" cached_calls={arm.cached_calls}, expected n=calls={n}, errors=0, cached_calls={want_cached}"
        )


CONTENDERS = ("bare", "tw fresh", "tw cached")


def one_repeat(server: ServerProcess, root: Path, items: list[Item], concurrency: int, r: int) -> dict[str, dict[int, Sample]]:
    """Every contender at N and at 1, in an order that alternates between repeats."""
    n = len(items)
    base = root / f"repeat{r}"
    task_n = write_task(base / "task_n", items, server.base_url, concurrency)
    task_1 = write_task(base / "task_1", items[:1], server.base_url, concurrency)
    runs_1, runs_n = base / "runs_1", base / "runs_n"  # separate databases: both start with an empty cache
    out: dict[str, dict[int, Sample]] = defaultdict(dict)

    def bare() -> None:
        s1, _ = measure(server, run_bare(server.base_url, items[:1], concurrency))
        sn, answers = measure(server, run_bare(server.base_url, items, concurrency))
        assert s1.requests == 1 and sn.requests == n, (s1.requests, sn.requests)
        assert len(answers) == n
        out["bare"][1], out["bare"][n] = s1, sn

    def tunewise_all() -> None:
        s1, o1 = measure(server, run_tunewise(task_1, runs_1))
        sn, on = measure(server, run_tunewise(task_n, runs_n))
        check_tunewise(o1, 1, cached=False)
        check_tunewise(on, n, cached=False)
        assert s1.requests == 1 and sn.requests == n, (s1.requests, sn.requests)
        out["tw fresh"][1], out["tw fresh"][n] = s1, sn
        # Cached: the same tasks again, on the database the N-example run filled.
        cn, ocn = measure(server, run_tunewise(task_n, runs_n))
        c1, oc1 = measure(server, run_tunewise(task_1, runs_n))
        check_tunewise(ocn, n, cached=True)
        check_tunewise(oc1, 1, cached=True)
        if cn.requests or c1.requests:
            raise AssertionError(f"cached runs sent {cn.requests + c1.requests} requests to the server, expected 0")
        out["tw cached"][1], out["tw cached"][n] = c1, cn

    for step in (bare, tunewise_all) if r % 2 == 0 else (tunewise_all, bare):
        step()

    # Same server work on both sides: tunewise sent exactly the request bodies the bare loop sent.
    b, t = out["bare"][n], out["tw fresh"][n]
    if sorted(server.digests(b.first_request, b.first_request + n)) != sorted(
        server.digests(t.first_request, t.first_request + n)
    ):
        raise AssertionError("tunewise and the bare loop sent different request bodies")
    return out


# --------------------------------------------------------------------------------------------------
# Reporting.


@dataclass
class Figures:
    """One contender in one repeat, in seconds."""

    fixed_wall: float
    fixed_cpu: float
    call_wall: float  # (T(N) - T(1)) / (N - 1)
    call_cpu: float
    total_wall: float  # T(N) / N: nothing subtracted
    total_cpu: float
    server_cpu: float  # server CPU per request in the N run (0 when nothing was sent)


def figures(samples: dict[int, Sample], n: int) -> Figures:
    s1, sn = samples[1], samples[n]
    return Figures(
        fixed_wall=s1.wall_s,
        fixed_cpu=s1.cpu_s,
        call_wall=(sn.wall_s - s1.wall_s) / (n - 1),
        call_cpu=(sn.cpu_s - s1.cpu_s) / (n - 1),
        total_wall=sn.wall_s / n,
        total_cpu=sn.cpu_s / n,
        server_cpu=sn.server_cpu_s / sn.requests if sn.requests else 0.0,
    )





def report(per_repeat: list[dict[str, Figures]], n: int, c: int) -> str:
    ms = lambda x: f"{x * 1e3:.2f}"  # noqa: E731
    rows_call, rows_total = [], []
    for name in CONTENDERS:
        fs = [rep[name] for rep in per_repeat]
        ratio_w = [rep[name].call_wall / rep["bare"].call_wall for rep in per_repeat]
        ratio_c = [rep[name].call_cpu / rep["bare"].call_cpu for rep in per_repeat]
        rows_call.append(
            [
                name,
                ms(median([f.call_wall for f in fs])),
                ms(median([f.call_cpu for f in fs])),
                "-" if name == "bare" else ratio(ratio_w),
                "-" if name == "bare" else ratio(ratio_c),
                f"{median([f.fixed_wall for f in fs]) * 1e3:.0f}",
                f"{median([f.fixed_cpu for f in fs]) * 1e3:.0f}",
                ms(median([f.server_cpu for f in fs])),
            ]
        )
        tw = [rep[name].total_wall / rep["bare"].total_wall for rep in per_repeat]
        tc = [rep[name].total_cpu / rep["bare"].total_cpu for rep in per_repeat]
        rows_total.append(
            [
                name,
                ms(median([f.total_wall for f in fs])),
                ms(median([f.total_cpu for f in fs])),
                "-" if name == "bare" else ratio(tw),
                "-" if name == "bare" else ratio(tc),
            ]
        )
    head = (
        f"{n} calls, concurrency {c}, {len(per_repeat)} repeat(s) interleaved; medians over repeats,"
        " ratios per repeat then median [min-max]"
    )
    t1 = table(
        ["per call: (T(N)-T(1))/(N-1)", "wall ms", "client CPU ms", "wall / bare", "CPU / bare",
         "fixed T(1) wall ms", "fixed T(1) CPU ms", "server CPU ms/req"],
        rows_call,
    )
    t2 = table(["whole run: T(N)/N", "wall ms", "client CPU ms", "wall / bare", "CPU / bare"], rows_total)
    return f"{head}\n\n{t1}\n\n{t2}"


# --------------------------------------------------------------------------------------------------
# Profiling: where the client CPU goes, by area, tunewise against the bare loop.
#
# cProfile runs on process CPU time (time.process_time), not wall time: on a shared machine a
# preempted socket.send would otherwise show up as milliseconds of "own time". Built-ins and generic
# standard-library helpers (isinstance, getattr, typing, functools, ...) have no area of their own:
# their time is handed to whoever called them, in proportion to the time spent under each caller.

_SPECIFIC = [
    ("sqlite3", lambda f, fn: "sqlite3" in fn),
    ("hashlib", lambda f, fn: "openssl_" in fn or "_hashlib" in fn or f.endswith("/hashlib.py")),
    ("json", lambda f, fn: "/json/" in f or "_json" in fn),
    ("dataclasses.asdict + copy.deepcopy", lambda f, fn: f.endswith(("/dataclasses.py", "/copy.py"))),
    ("file I/O (results.jsonl, manifest, reports, fsync)",
     lambda f, fn: "_io." in fn or "TextIOWrapper" in fn or "posix." in fn or f.endswith(("/pathlib.py", "/os.py"))),
    ("numpy / scipy (summary CI)", lambda f, fn: "/numpy/" in f or "/scipy/" in f or "numpy" in fn),
    ("jinja2 (reports)", lambda f, fn: "/jinja2/" in f or "/markupsafe/" in f),
    ("yaml (task file)", lambda f, fn: "/yaml/" in f),
    ("pydantic", lambda f, fn: "/pydantic" in f),
    ("openai SDK", lambda f, fn: "/openai/" in f),
    ("httpx2 / httpcore2 / h11 / anyio", lambda f, fn: any(p in f for p in ("/httpx", "/httpcore", "/h11/", "/anyio/", "/sniffio/"))),
    ("ssl context (client creation)", lambda f, fn: "_ssl." in fn or f.endswith("/ssl.py") or "/certifi/" in f),
    ("asyncio + sockets", lambda f, fn: "/asyncio/" in f or "_socket." in fn or "select" in fn or f.endswith(("/selectors.py", "/socket.py"))),
    ("tunewise (its own Python)", lambda f, fn: "/tunewise/" in f),
    ("bench script", lambda f, fn: f.endswith("/harness_overhead.py")),
]


def _specific_area(filename: str, funcname: str) -> str | None:
    for name, match in _SPECIFIC:
        if match(filename, funcname):
            return name
    return None


def attribute(stats: pstats.Stats) -> dict[str, float]:
    """Own CPU time by area; generic functions inherit their callers' areas."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    memo: dict[Any, dict[str, float]] = {}

    def shares(key: Any, depth: int, seen: frozenset[Any]) -> dict[str, float]:
        if key in memo:
            return memo[key]
        area = _specific_area(key[0], key[2])
        if area is not None:
            return {area: 1.0}
        callers = raw[key][4] if key in raw else {}
        weights = {c: v[3] for c, v in callers.items() if c not in seen}  # time under each caller
        total = sum(weights.values())
        if depth >= 12 or total <= 0:
            out = {"other (unattributed)": 1.0}
        else:
            out = defaultdict(float)
            for c, w in weights.items():
                for a, f in shares(c, depth + 1, seen | {key}).items():
                    out[a] += f * w / total
            out = dict(out)
        if not seen:
            memo[key] = out
        return out

    result: dict[str, float] = defaultdict(float)
    for key, (_, _, tt, _, _) in raw.items():
        for area, f in shares(key, 0, frozenset()).items():
            result[area] += tt * f
    return result


def own_time(stats: pstats.Stats, wanted: list[tuple[str, str]]) -> list[tuple[str, float, int]]:
    """Cumulative CPU time and call count of the named (file suffix, function) pairs (plain functions only:
    cProfile's cumulative time of a coroutine is not meaningful)."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    out = []
    for suffix, func in wanted:
        ct, nc = 0.0, 0
        for (filename, _, funcname), (_, ncalls, _, cumt, _) in raw.items():
            if filename.endswith(suffix) and funcname == func:
                ct += cumt
                nc += ncalls
        out.append((f"{suffix.removeprefix('tunewise/')}:{func}", ct, nc))
    return out


_TUNEWISE_SPOTS = [
    ("tunewise/taskfile.py", "load_task"),
    ("tunewise/data.py", "load_dataset"),
    ("tunewise/evaluation/manifest.py", "fingerprint"),
    ("tunewise/db.py", "connect"),
    ("tunewise/evaluation/store.py", "create"),
    ("tunewise/calls/caller.py", "request"),
    ("tunewise/models/base.py", "cache_key"),
    ("tunewise/calls/cache.py", "get"),
    ("tunewise/models/base.py", "message_dicts"),
    ("tunewise/models/openai_backend.py", "_completions"),
    ("tunewise/calls/cache.py", "put"),
    ("tunewise/calls/log.py", "answered"),
    ("tunewise/evaluation/runner.py", "score_answer"),
    ("tunewise/evaluation/store.py", "append"),
    ("tunewise/decide/summary.py", "summary_of"),
    ("tunewise/decide/stats.py", "mean_ci"),
    ("tunewise/report/__init__.py", "write_reports"),
    ("tunewise/evaluation/store.py", "update_manifest"),
]


def profile(fn: Callable[[], Any]) -> pstats.Stats:
    gc.collect()
    pr = cProfile.Profile(time.process_time)
    pr.enable()
    fn()
    pr.disable()
    return pstats.Stats(pr)


def profile_report(
    server: ServerProcess, root: Path, items: list[Item], concurrency: int, top: int, bare_cpu_per_call: float
) -> str:
    import io

    n = len(items)
    task_n = write_task(root / "profile" / "task_n", items, server.base_url, concurrency)
    runs = root / "profile" / "runs"
    before = server.stats().requests
    profiles = {
        "bare": profile(run_bare(server.base_url, items, concurrency)),
        "tw fresh": profile(run_tunewise(task_n, runs)),
    }
    sent = server.stats().requests
    profiles["tw cached"] = profile(run_tunewise(task_n, runs))
    assert sent - before == 2 * n and server.stats().requests == sent, "profiled runs sent the wrong number of requests"
    areas = {k: attribute(v) for k, v in profiles.items()}
    names = sorted({a for d in areas.values() for a in d},
                   key=lambda a: -(areas["tw fresh"].get(a, 0.0) - areas["bare"].get(a, 0.0)))
    us = lambda x: f"{x / n * 1e6:.0f}"  # noqa: E731
    rows = [[a, *(us(areas[k].get(a, 0.0)) for k in areas), us(areas["tw fresh"].get(a, 0.0) - areas["bare"].get(a, 0.0))]
            for a in names]
    rows.append(["TOTAL (profiled)", *(us(sum(areas[k].values())) for k in areas),
                 us(sum(areas["tw fresh"].values()) - sum(areas["bare"].values()))])
    fresh, cached = own_time(profiles["tw fresh"], _TUNEWISE_SPOTS), own_time(profiles["tw cached"], _TUNEWISE_SPOTS)
    inflation = sum(areas["bare"].values()) / n / bare_cpu_per_call if bare_cpu_per_call > 0 else float("nan")
    parts = [
        f"cProfile on CPU time, one run of each over {n} calls, start-up included. The profiler inflates Python-heavy"
        f" code about {inflation:.1f}x here (bare: profiled vs timed CPU per call) and C calls (sqlite3, json,"
        " hashlib) much less: read the rows against each other, not against the table above."
        " CPU by area, microseconds per call:",
        "",
        table(["area", *areas, "fresh - bare"], rows),
        "",
        "tunewise's own steps (cumulative CPU, microseconds per call = whole run / N):",
        "",
        table(["function", "tw fresh", "calls", "tw cached", "calls"],
               [[name, us(ct), str(nc), us(cct), str(cnc)] for (name, ct, nc), (_, cct, cnc) in zip(fresh, cached)]),
    ]
    for label in ("tw fresh", "tw cached"):
        buf = io.StringIO()
        stats = profiles[label]
        stats.stream = buf  # type: ignore[attr-defined]
        stats.sort_stats("tottime").print_stats(top)
        body = buf.getvalue()
        body = body[body.find("   ncalls"):] if "   ncalls" in body else body
        parts += ["", f"Top {top} functions by own CPU time, {label}:", "", body.rstrip()]
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=1000, help="N: distinct requests per run (default 1000)")
    p.add_argument("--concurrency", type=int, default=16, help="C: requests in flight (default 16)")
    p.add_argument("--repeats", type=int, default=3, help="R: interleaved repeats (default 3)")
    p.add_argument("--profile", action="store_true", help="after timing, cProfile one run of each and show where CPU goes")
    p.add_argument("--profile-calls", type=int, default=300, help="calls per profiled run (default 300)")
    p.add_argument("--top", type=int, default=25, help="functions listed per profile (default 25)")
    p.add_argument("--json", type=Path, help="also write the raw samples to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary task and run folders")
    args = p.parse_args(argv)
    if args.calls < 2 or args.concurrency < 1 or args.repeats < 1:
        p.error("--calls must be >= 2, --concurrency and --repeats >= 1")

    import openai  # noqa: F401

    import tunewise  # noqa: F401  (import cost is not part of any measurement)
    import tunewise.pipeline  # noqa: F401

    root = Path(tempfile.mkdtemp(prefix="tunewise-bench-"))
    server = ServerProcess()
    t_start = time.perf_counter()
    try:
        items = make_items(args.calls)
        print(f"server {server.base_url} (pid in another process); temp {root}", file=sys.stderr)
        # Warm-up, untimed: imports on first use (scipy, jinja2 templates, the SDK's lazy parts), the
        # server's threads. Big enough for the summary's bootstrap path (n > 1, scores not all equal).
        warm = items[: min(40, len(items))]
        print("warm-up ...", file=sys.stderr)
        one_repeat(server, root / "warmup", warm, args.concurrency, 0)

        per_repeat: list[dict[str, Figures]] = []
        raw: list[dict[str, Any]] = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            samples = one_repeat(server, root, items, args.concurrency, r)
            per_repeat.append({name: figures(samples[name], args.calls) for name in CONTENDERS})
            raw.append({name: {str(k): asdict(v) for k, v in samples[name].items()} for name in CONTENDERS})
            b, t = per_repeat[-1]["bare"], per_repeat[-1]["tw fresh"]
            print(
                f"repeat {r + 1}/{args.repeats}: {time.perf_counter() - t0:.1f} s; per-call CPU bare"
                f" {b.call_cpu * 1e3:.2f} ms, tw fresh {t.call_cpu * 1e3:.2f} ms",
                file=sys.stderr,
            )
        print(report(per_repeat, args.calls, args.concurrency))
        if args.json:
            args.json.write_text(json.dumps({"calls": args.calls, "concurrency": args.concurrency, "repeats": raw}, indent=2))
        if args.profile:
            print()
            bare_cpu = statistics.median(rep["bare"].total_cpu for rep in per_repeat)
            print(profile_report(server, root, items[: max(2, args.profile_calls)], args.concurrency, args.top, bare_cpu))
        print(f"\n(total bench time {time.perf_counter() - t_start:.0f} s)", file=sys.stderr)
    finally:
        server.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
