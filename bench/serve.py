"""Load on `tunewise serve`: 200 concurrent clients for a fixed time against a served zero_shot and a served rag arm.

    .venv/bin/python bench/serve.py [--clients 200] [--seconds 20]

The model is tests/openai_server.py's scripted one, in a process of its own (its listen backlog raised, as in
harness_overhead.py). A run of the lab-less capitals task with documents measures both arms first. Then, per arm:

  served      `tunewise serve RUN --arm ARM --no-auth --no-cache` in its own process; the clients are asyncio
              aiohttp in this one, `--clients` at once, each sending its next request as soon as the last came back
  in-process  the same arm loaded in this process (tunewise.serve.load_arm, no cache) and asked directly, with
              the same concurrency and duration: what answering costs without HTTP, auth, logging and metrics

Reported per arm: requests, errors (must be 0), requests/s, p50 and p99 latency, the served/in-process ratios of
p50 latency and of throughput, and the server's RSS at start and at the end. Both ask the model for every
answer (no cache), so the model server's time is in both. Ratios, not seconds, are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from harness_overhead import ServerProcess  # noqa: E402  (bench/ is on sys.path when a script runs)
from tables import table  # noqa: E402

QUESTIONS = 200


def questions() -> list[str]:
    from openai_server import CAPITALS
    from test_rag import HIDDEN

    countries = sorted(CAPITALS) + sorted(HIDDEN)
    return [f"What is the capital of {c}?" for c in countries][:QUESTIONS]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


async def drive(ask, clients: int, seconds: float) -> tuple[list[float], list[str]]:  # noqa: ANN001 - async callable
    """`clients` loops calling `ask(question)` until `seconds` are up: latencies (ms) and the errors seen."""
    qs = questions()
    latencies: list[float] = []
    errors: list[str] = []
    end = time.perf_counter() + seconds

    async def client(i: int) -> None:
        rng = random.Random(i)
        while time.perf_counter() < end:
            start = time.perf_counter()
            try:
                await ask(rng.choice(qs))
                latencies.append((time.perf_counter() - start) * 1000)
            except Exception as e:  # noqa: BLE001 - counted, and the bench says which
                errors.append(f"{type(e).__name__}: {e}"[:200])

    await asyncio.gather(*(client(i) for i in range(clients)))
    return latencies, errors


async def served(run_id: str, runs: Path, arm: str, clients: int, seconds: float) -> dict[str, Any]:
    import aiohttp

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunewise.cli", "serve", run_id, "--arm", arm, "--no-auth", "--no-cache", "--port",
         str(port), "--rate-limit", "1000000", "--runs-dir", str(runs)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # aiohttp, not httpx, as the load: httpx spent ~11 ms of client CPU a request at this concurrency, so the
        # clients, not the server, were what was measured.
        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
            for _ in range(1200):
                try:
                    async with http.get(f"{base}/healthz") as r:
                        if r.status == 200:
                            model = (await r.json())["model"]
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            rss_start = rss_mb(proc.pid)

            async def ask(question: str) -> None:
                body = {"model": model, "messages": [{"role": "user", "content": question}]}
                async with http.post(f"{base}/v1/chat/completions", json=body) as r:
                    r.raise_for_status()
                    await r.read()

            await drive(ask, min(clients, 16), 2.0)  # warm-up, untimed
            server_cpu, client_cpu = cpu_s(proc.pid), time.process_time()
            latencies, errors = await drive(ask, clients, seconds)
            n = max(1, len(latencies))
            return {"n": len(latencies), "errors": errors, "p50": percentile(latencies, 50),
                    "p99": percentile(latencies, 99), "rps": len(latencies) / seconds, "rss_start": rss_start,
                    "rss_end": rss_mb(proc.pid), "server_cpu": (cpu_s(proc.pid) - server_cpu) * 1000 / n,
                    "client_cpu": (time.process_time() - client_cpu) * 1000 / n}
    finally:
        proc.terminate()
        proc.wait(60)


async def in_process(run_id: str, runs: Path, arm: str, clients: int, seconds: float) -> dict[str, Any]:
    import uuid

    from tunewise.data import Query
    from tunewise.serve import load_arm

    loaded = await load_arm(run_id, runs, arm=arm, read_cache=False)
    try:
        async def ask(question: str) -> None:
            request_id = uuid.uuid4().hex
            await loaded.arm.answer(Query(request_id, question, {"question": question}),
                                    loaded.caller.for_example(loaded.arm.name, request_id))

        await drive(ask, min(clients, 16), 2.0)
        cpu = time.process_time()
        latencies, errors = await drive(ask, clients, seconds)
        return {"n": len(latencies), "errors": errors, "p50": percentile(latencies, 50),
                "p99": percentile(latencies, 99), "rps": len(latencies) / seconds,
                "cpu": (time.process_time() - cpu) * 1000 / max(1, len(latencies))}
    finally:
        await loaded.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "unused")

    import tunewise
    from test_rag import write_knowledge_task
    from tunewise.evaluation.experiment import RunOptions

    model = ServerProcess()
    with tempfile.TemporaryDirectory(prefix="tunewise-serve-bench-") as tmp:
        root = Path(tmp)
        task = write_knowledge_task(root / "task", model.base_url, ["zero_shot", {"rag": {"k": 2, "retriever": "bm25"}}])
        runs = root / "runs"
        run_id = tunewise.run(task, RunOptions(runs_dir=runs)).store.run_id
        rows = []
        for arm in ("zero_shot", "rag"):
            s = asyncio.run(served(run_id, runs, arm, args.clients, args.seconds))
            p = asyncio.run(in_process(run_id, runs, arm, args.clients, args.seconds))
            for error in sorted(set(s["errors"] + p["errors"]))[:5]:
                print(f"{arm}: error {error}")
            rows.append([
                arm, f"{s['n']:.0f}", str(len(s["errors"])), f"{s['rps']:.0f}", f"{s['p50']:.1f}", f"{s['p99']:.1f}",
                f"{p['rps']:.0f}", f"{p['p50']:.1f}", f"{p['p99']:.1f}", f"{s['p50'] / p['p50']:.2f}x",
                f"{p['rps'] / s['rps']:.2f}x", f"{s['server_cpu']:.2f}", f"{s['client_cpu']:.2f}", f"{p['cpu']:.2f}",
                f"{s['rss_start']:.0f} -> {s['rss_end']:.0f}",
            ])
    model.stop()
    print(f"{args.clients} concurrent clients, {args.seconds:g} s per contender, every answer from the model (no cache)\n")
    print(table(["arm", "served requests", "errors", "served req/s", "served p50 ms", "served p99 ms",
                 "in-process req/s", "in-process p50 ms", "in-process p99 ms", "p50 served / in-process",
                 "throughput in-process / served", "server CPU ms/req", "client CPU ms/req", "in-process CPU ms/req",
                 "server RSS MB start -> end"], rows))


if __name__ == "__main__":
    main()
