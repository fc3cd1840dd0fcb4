"""The boosting and adaptive arms on the lab's `mixed` task, next to zero_shot and rag.

    .venv/bin/python bench/boost_lab.py [--quick] [--max-test N] [--runs-dir DIR]

Writes a copy of the default lab world's mixed task.yaml (same data, documents and model) with the
arms zero_shot, rag, adaptive_rag, self_consistency and committee, runs it, and prints the arms
table and the fields these arms add to summary.json: maj@k and best-of-k, recovery, the retrieval
rate, prompt tokens saved against rag, and the knowing-doing gap. `--quick` uses the seconds-to-build
lab model (`tunewise demo --quick`'s) instead of the full one (built and cached on first use).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import yaml

ARMS = [
    "zero_shot",
    {"rag": {"k": 2, "retriever": "hybrid"}},
    {"adaptive_rag": {"k": 2, "retriever": "hybrid"}},
    {"self_consistency": {"k": 16, "temperature": 1.0}},  # at 0.7 the lab model's samples hardly differ
    {"committee": {"k": 5, "temperature": 1.0}},
]


def write_task(world: Path, out: Path, model_uri: str, max_test: int | None) -> Path:
    spec = yaml.safe_load((world / "tasks" / "mixed" / "task.yaml").read_text())
    spec["data"]["path"] = str(world / "tasks" / "mixed" / "data.jsonl")
    if max_test:
        spec["data"]["max_test"] = max_test
    spec["knowledge"]["paths"] = [str(world / "docs")]
    spec["model"]["uri"] = model_uri
    spec["arms"] = ARMS
    out.mkdir(parents=True, exist_ok=True)
    path = out / "task.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick lab model")
    parser.add_argument("--max-test", type=int, default=None)
    parser.add_argument("--runs-dir", type=Path, default=None)
    args = parser.parse_args()

    import tunewise
    from tunewise.evaluation.experiment import RunOptions
    from tunewise.lab import build_model, default_world_dir

    world = default_world_dir()
    model = build_model(world, quick=args.quick)
    runs = args.runs_dir or Path(tempfile.mkdtemp(prefix="boost-lab-"))
    task = write_task(world, runs / "task", f"hf:{model}" if args.quick else f"lab:{world}", args.max_test)
    outcome = tunewise.run(task, RunOptions(runs_dir=runs))
    print(f"model: {model} ({'quick' if args.quick else 'full'} lab model); run: {outcome.store.dir}")
    print((outcome.store.dir / "report.md").read_text())
    fields = ("name", "score", "ci", "n", "tokens_in", "calls", "cost_per_1k", "fixed_cost", "extras")
    arms = [{k: v for k, v in a.model_dump().items() if k in fields and v is not None} for a in outcome.summary.arms]
    json.dump(arms, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
