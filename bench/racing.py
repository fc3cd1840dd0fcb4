"""Racing against the exhaustive plan (GitHub issue 19): the same recommendation, at what share of the tokens?

    .venv/bin/python bench/racing.py [--seeds N] [--parts simulated,loopback,lab] [--lab-runs DIR] [--json FILE]

Three kinds of task, each decided both ways in one go:

  simulated   constructed arms with Bernoulli scores of known means (far apart, close calls where two arms differ by
              less than a CI's width, no arm meeting min_score, a latency cap), N seeds each, 170 test examples,
              written as a run's recorded results; the exhaustive decision is `summary_of` on them, the racing one
              `summary_of` on the same results with a racing plan, which recomputes the race from the rounds' prefixes
              (exactly what a racing run records: its drops read only the examples of the rounds so far).
  loopback    the capitals task on tests/openai_server.py, run live twice: `tunewise run` and `tunewise run --racing`.
  lab         every task of the default lab world with the lab model, run exhaustively, then its race replayed
              from the recorded results as for `simulated` (a live racing run would record the same answers, from the
              cache: temperature 0, seeded samples), so fine-tuning is not paid for twice.

The racing share is the tokens the racing run's answers hold over the exhaustive run's (training is paid by both).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from tables import table  # noqa: E402  (bench/ is on sys.path when a script runs)

from tunewise.arms.base import Result  # noqa: E402
from tunewise.decide.summary import summary_of  # noqa: E402
from tunewise.evaluation.manifest import RacingPlan, racing_plan  # noqa: E402
from tunewise.evaluation.store import RunStore  # noqa: E402
from tunewise.spec import RacingSpec  # noqa: E402

N = 170


@dataclass
class Row:
    kind: str
    task: str
    exhaustive: str | None
    racing: str | None
    dropped: str
    tokens_exhaustive: float
    tokens_racing: float
    runs: int = 1
    same: int = 1

    @property
    def share(self) -> float:
        return self.tokens_racing / self.tokens_exhaustive if self.tokens_exhaustive else 1.0


def racing_tokens(store: RunStore, plan: RacingPlan) -> tuple[float, float, str]:
    """Tokens of every recorded answer, of those a racing run would have recorded (each dropped arm's rounds only),
    and the drops in words."""
    summary = summary_of(store)
    kept = {a.name: a.racing.n if a.racing else plan.sizes[-1] for a in summary.arms}
    rank = {example: i for i, example in enumerate(plan.order)}
    results = list(store.latest().values())
    total = sum(r.tokens_in + r.tokens_out for r in results)
    raced = sum(r.tokens_in + r.tokens_out for r in results if rank[r.example_id] < kept[r.arm])
    dropped = ", ".join(f"{a.name}@{a.racing.dropped_round}" for a in summary.arms if a.racing) or "-"
    return total, raced, dropped


def race_order(store: RunStore) -> list[str]:
    """The run's test examples in the order a racing run of its task permutes (the data's); a constructed run, which
    has no task, in the order of their ids."""
    manifest = store.manifest
    if manifest.get("spec") is None:
        return sorted({r.example_id for r in store.results()})
    from tunewise.data import load_dataset
    from tunewise.evaluation.rebuild import recorded_task

    return [e.id for e in load_dataset(recorded_task(manifest, "the bench replays its race")).test]


def replay(run_dir: Path, scratch: Path, seed: int) -> tuple[str | None, str | None, float, float, str]:
    """The exhaustive run's recommendation, and the racing one recomputed on a copy of it with a racing plan."""
    exhaustive = summary_of(RunStore(run_dir)).recommendation.arm
    copy = scratch / run_dir.name
    shutil.copytree(run_dir, copy)
    store = RunStore(copy)
    plan = racing_plan(RacingSpec(), race_order(store), seed)
    store.update_manifest(racing=plan.model_dump())
    total, raced, dropped = racing_tokens(store, plan)
    racing = summary_of(store).recommendation.arm
    shutil.rmtree(copy)
    return exhaustive, racing, total, raced, dropped


# (name, [(mean, tokens per query, latency ms)], requirements)
SCENARIOS = [
    ("far apart", [(0.02, 20, 100), (0.35, 60, 100), (0.9, 120, 100), (0.92, 700, 100)], {"min_score": 0.8}),
    ("close call at min_score", [(0.79, 20, 100), (0.82, 40, 100), (0.84, 300, 100)], {"min_score": 0.8}),
    ("close pair above min_score", [(0.86, 20, 100), (0.88, 30, 100), (0.5, 400, 100)], {"min_score": 0.7}),
    ("none meets min_score", [(0.1, 20, 100), (0.55, 60, 100), (0.6, 120, 100)], {"min_score": 0.9}),
    ("latency cap", [(0.95, 30, 3000), (0.85, 60, 200), (0.3, 20, 200)], {"min_score": 0.7, "max_p95_latency_ms": 1000}),
    ("no min_score", [(0.5, 20, 100), (0.8, 60, 100), (0.78, 200, 100)], {}),
]


def write_scenario(runs: Path, arms: Sequence[tuple[float, int, float]], req: dict, seed: int) -> RunStore:
    """A completed run of Bernoulli arms (correlated through a shared uniform per example, as arms of one model are)."""
    rng = np.random.default_rng(seed)
    shared = rng.random(N)
    own = rng.random((len(arms), N))
    moves = rng.random((len(arms), N)) < 0.5  # half of each arm's answers move with the others'
    names = [f"arm{i}" for i in range(len(arms))]
    manifest = {"task": "simulated", "model": "openai:simulated", "arms": [{"arm": "zero_shot", "name": n} for n in names],
                "arm_names": names, "requirements": req, "seed": 0, "splits": {"train": 0, "dev": 0, "test": N},
                "status": "complete"}
    store = RunStore.create(runs, "simulated", manifest)
    for i, (name, (mean, tokens, latency)) in enumerate(zip(names, arms)):
        u = np.where(moves[i], shared, own[i])  # uniform still: P(score) is the arm's mean
        for e in range(N):
            score = float(u[e] < mean)
            store.append(Result(arm=name, example_id=f"e{e:03d}", output=str(score), target="1", score=score, calls=1,
                                tokens_in=tokens, tokens_out=2, cost=tokens * 1e-6, latency_ms=latency * (0.9 + 0.2 * own[i, e])))
    store.close()
    return store


def simulated(seeds: int, scratch: Path) -> list[Row]:
    rows = []
    for name, arms, req in SCENARIOS:
        same, total, raced, drops = 0, 0.0, 0.0, []
        for seed in range(seeds):
            store = write_scenario(scratch / "sim", arms, req, seed)
            exhaustive, racing, t, r, dropped = replay(store.dir, scratch, seed)
            shutil.rmtree(store.dir)
            same += exhaustive == racing
            total, raced = total + t, raced + r
            drops.append(dropped)
        common = max(set(drops), key=drops.count)
        rows.append(Row("simulated", name, exhaustive, racing, f"{common} ({drops.count(common)}/{seeds})", total, raced,
                        runs=seeds, same=same))
    return rows


def loopback(scratch: Path) -> list[Row]:
    from capitals import write_capitals_task
    from openai_server import OpenAITestServer

    import tunewise
    from tunewise.evaluation.experiment import RunOptions

    arms = ["zero_shot", {"few_shot": {"k": 2}}, {"arm": "few_shot", "name": "few_shot_8", "k": 8},
            {"self_consistency": {"k": 5, "temperature": 0.7}}]
    with OpenAITestServer(max_lifetime_s=1200) as server:
        task = write_capitals_task(scratch / "capitals", server.base_url, arms=arms)
        plain = tunewise.run(task, RunOptions(runs_dir=scratch / "plain")).summary
        raced = tunewise.run(task, RunOptions(runs_dir=scratch / "raced", racing=True)).summary
    tokens = sum((a.tokens_in + a.tokens_out) * a.n for a in plain.arms)
    assert raced.racing is not None
    dropped = ", ".join(f"{a.name}@{a.racing.dropped_round}" for a in raced.arms if a.racing) or "-"
    return [Row("loopback", "capitals (32 test)", plain.recommendation.arm, raced.recommendation.arm, dropped, tokens,
                raced.racing.tokens_spent, same=int(plain.recommendation.arm == raced.recommendation.arm))]


def lab(scratch: Path, recorded: Path | None) -> list[Row]:
    """Each lab task run exhaustively (or its complete run found under `recorded`, e.g. a `tunewise demo` runs
    folder), its race replayed."""
    import tunewise
    from tunewise.evaluation.experiment import RunOptions
    from tunewise.evaluation.store import list_runs
    from tunewise.lab import build_model, default_world_dir

    done = {m["task"]: recorded / m["run_id"] for m in list_runs(recorded)
            if m.get("status") == "complete"} if recorded else {}
    world = None if done else default_world_dir()
    if world is not None:
        build_model(world)
    rows = []
    tasks = sorted(done) if done else [f.parent.name for f in sorted((world / "tasks").glob("*/task.yaml"))]
    for name in tasks:
        run_dir = done.get(name) or tunewise.run(world / "tasks" / name / "task.yaml",
                                                 RunOptions(runs_dir=scratch / "lab")).store.dir
        seed = RunStore(run_dir).manifest.get("seed", 0)
        exhaustive, racing, total, raced, dropped = replay(run_dir, scratch, seed)
        rows.append(Row("lab", name, exhaustive, racing, dropped, total, raced, same=int(exhaustive == racing)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100, help="seeds per simulated scenario")
    parser.add_argument("--parts", default="simulated,loopback,lab",
                        help="which of simulated, loopback, lab (lab builds the lab model when it is missing)")
    parser.add_argument("--lab-runs", type=Path, help="complete lab runs to replay (a `tunewise demo` runs folder)"
                        " instead of running the lab tasks")
    parser.add_argument("--json", type=Path, help="write the rows as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        parts = {"simulated": lambda: simulated(args.seeds, scratch), "loopback": lambda: loopback(scratch),
                 "lab": lambda: lab(scratch, args.lab_runs)}
        rows = [row for part in args.parts.split(",") for row in parts[part]()]
    print(table(["kind", "task", "recommended (exhaustive)", "recommended (racing)", "same", "dropped (arm@round)",
                 "tokens exhaustive", "tokens racing", "share"],
                [[r.kind, r.task, str(r.exhaustive), str(r.racing), f"{r.same}/{r.runs}", r.dropped,
                  f"{r.tokens_exhaustive / r.runs:,.0f}", f"{r.tokens_racing / r.runs:,.0f}", f"{r.share:.0%}"]
                 for r in rows]))
    for kind in dict.fromkeys(r.kind for r in rows):
        mine = [r for r in rows if r.kind == kind]
        share = sum(r.tokens_racing for r in mine) / sum(r.tokens_exhaustive for r in mine)
        print(f"{kind}: same recommendation {sum(r.same for r in mine)}/{sum(r.runs for r in mine)},"
              f" racing spent {share:.0%} of the exhaustive tokens")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) | {"share": r.share} for r in rows], indent=2) + "\n")


if __name__ == "__main__":
    main()
