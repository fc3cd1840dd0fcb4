"""Runs built from constructed results, written to a real run store: no model, no server."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tunewise.arms.base import Result
from tunewise.evaluation.store import RunStore


@dataclass
class ArmSpec:
    """One arm of a constructed run: its scores per example (in example order), what a query costs, and which
    answers were stale (per example, None for an example without stale answers) or abstained (indices)."""

    name: str
    scores: Sequence[float]
    cost: float = 0.001
    latency_ms: float = 100.0
    arm_type: str = "zero_shot"
    fixed_cost: float = 0.0
    errors: Sequence[int] = field(default_factory=tuple)
    stale: Sequence[bool | None] = field(default_factory=tuple)
    abstained: Sequence[int] = field(default_factory=tuple)


def write_run(
    runs_dir: Path, arms: Sequence[ArmSpec], *, requirements: dict | None = None, task: str = "constructed",
    inputs: Sequence[str] | None = None,
) -> RunStore:
    """A completed run whose results are exactly `arms` (example ids e000, e001, ...)."""
    manifest = {
        "task": task,
        "model": "openai:constructed",
        "tunewise_version": "test",
        "arms": [{"arm": a.arm_type, "name": a.name} for a in arms],
        "arm_names": [a.name for a in arms],
        "requirements": requirements or {},
        "seed": 0,
        "splits": {"train": 0, "dev": 0, "test": max(len(a.scores) for a in arms)},
        "status": "complete",
        "prepared": {a.name: {"fixed_cost": a.fixed_cost} for a in arms if a.fixed_cost},
    }
    store = RunStore.create(runs_dir, task, manifest)
    for a in arms:
        for i, score in enumerate(a.scores):
            errored = i in a.errors
            store.append(Result(
                arm=a.name, example_id=f"e{i:03d}", output="" if errored else ("right" if score == 1 else f"wrong {i}"),
                target="right", score=0.0 if errored else float(score), error="HTTP 500: boom" if errored else None,
                calls=1, tokens_in=50, tokens_out=5, cost=a.cost, latency_ms=a.latency_ms + i % 7 * 10,
                input=inputs[i] if inputs else f"question {i}?",
                stale=a.stale[i] if a.stale and not errored else None, abstained=i in a.abstained,
            ))
    store.close()
    return store
