"""A run's manifest: what it ran (task fingerprint, model, arms, every setting, versions) and how it went.

Written when the run starts, updated as arms prepare and when it ends; read by resume, summaries, reports
and comparisons.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import random
import time
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tunewise.spec import ModelSpec, RacingSpec, Requirements, Task
from tunewise.version import __version__

BUDGET_REACHED = "budget reached"  # the status of a run stopped by its budget (`tunewise run --budget`)
ID_SCHEME = 2  # example ids derived from the input only (1: from the input and the target)


_LATER_KNOWLEDGE_DEFAULTS = {"store": "lancedb", "min_recall": 0.95}


def fingerprint(task: Task) -> str:
    """sha256 of the validated spec, the data file's bytes and the id scheme: a resumed run must match it.

    Where the examples are answered (`executor`) is not part of it: a run resumes on another executor."""
    spec = task.model_dump(mode="json", exclude={"executor"})
    # Blocks and fields added later dump as before while left at their defaults, so runs resume across upgrades.
    for block in ("synth", "racing"):
        if getattr(task, block) is None:
            del spec[block]
    if spec.get("knowledge"):
        for name, default in _LATER_KNOWLEDGE_DEFAULTS.items():
            if spec["knowledge"].get(name) == default:
                del spec["knowledge"][name]
    h = hashlib.sha256(json.dumps([ID_SCHEME, spec], sort_keys=True).encode())
    try:
        h.update(task.data_path.read_bytes())
    except OSError:
        pass
    return h.hexdigest()


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class RacingPlan(BaseModel):
    """The rounds of a racing run, fixed when it starts: round r evaluates every arm still in the race on the first
    `sizes[r]` test examples of `order` (a seeded permutation, so each round's examples hold the previous round's);
    the drops are recomputed from the recorded results, at `alpha`."""

    alpha: float
    shares: list[float]
    sizes: list[int]
    order: list[str]


def racing_plan(spec: RacingSpec, test_ids: Sequence[str], seed: int) -> RacingPlan:
    """The rounds `spec` asks for over these test examples: a permutation seeded by the task's seed, and each round's
    share of them (at least one example, rounds that would repeat a size merged)."""
    order = list(test_ids)
    random.Random(f"racing:{seed}").shuffle(order)
    sizes: list[int] = []
    for share in spec.rounds:
        size = max(1, min(len(order), math.ceil(share * len(order) - 1e-9)))
        if not sizes or size > sizes[-1]:
            sizes.append(size)
    shares = [size / len(order) for size in sizes] if order else []
    return RacingPlan(alpha=spec.alpha, shares=shares, sizes=sizes, order=order)


def build_manifest(task: Task, sizes: dict[str, int], racing: RacingPlan | None = None) -> dict[str, Any]:
    """The manifest of a new run of `task` with splits of `sizes` (and the rounds of its race, when it races)."""
    return {
        "task": task.name,
        "task_path": str(task.path.resolve()) if task.path else None,
        "base_dir": str(task.base_dir.resolve()),
        "task_fingerprint": fingerprint(task),
        "tunewise_version": __version__,
        "python": platform.python_version(),
        "created_at": now(),
        "model": task.model.uri,
        "metric": task.metric.model_dump(exclude_none=True),
        "arms": [a.model_dump(mode="json") for a in task.arms],
        "arm_names": [a.label for a in task.arms],
        "requirements": task.requirements.model_dump(exclude_none=True),
        "seed": task.seed,
        "splits": sizes,
        "settings": task.model_dump(mode="json", exclude={"name", "arms", "metric", "requirements", "seed"}),
        # The task as written (what was set, not every default): what a server rebuilds the measured task from.
        "spec": task.model_dump(mode="json", exclude_unset=True, exclude={"arms"}),
        "status": "running",
        **({"racing": racing.model_dump()} if racing is not None else {}),
    }


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _ArmEntry(_Open):
    arm: str
    name: str | None = None


class _PrepareRecord(_Open):
    fixed_cost: float = Field(0.0, ge=0, allow_inf_nan=False)


class _Skipped(_Open):
    path: str
    reason: str


class _Knowledge(_Open):
    skipped: list[_Skipped] = []


class _Settings(_Open):
    model: ModelSpec | None = None


class ManifestShape(_Open):
    """What the readers of a manifest rely on (resume, summaries, reports, comparisons, `tunewise runs`): checked,
    strictly (no "3" for 3), whenever a manifest is read, so a damaged one is an error naming it, not a crash in
    whichever reader meets the damage first. Fields it does not name are any JSON."""

    task: str
    model: str
    arms: list[_ArmEntry] = Field(min_length=1)  # a task has at least one
    arm_names: list[str]
    status: str | None = None
    seed: int = 0
    requirements: Requirements | None = None
    prepared: dict[str, _PrepareRecord] | None = None
    training: dict[str, _PrepareRecord] | None = None  # what `prepared` was called before 0.2
    knowledge: _Knowledge | None = None
    splits: dict[str, int] | None = None
    settings: _Settings | None = None
    racing: RacingPlan | None = None
    run_id: str | None = None
    task_fingerprint: str | None = None
    task_path: str | None = None
    base_dir: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @model_validator(mode="after")
    def _names_are_the_arms(self) -> ManifestShape:
        labels = [a.name or a.arm for a in self.arms]
        if self.arm_names != labels or len(set(labels)) != len(labels):
            raise ValueError(f"arm_names {self.arm_names} are not the distinct names of its arms {labels}")
        return self


def prepared(manifest: dict[str, Any]) -> dict[str, Any]:
    """What each arm's `prepare` recorded, by arm name (runs before 0.2 kept it under `training`)."""
    return manifest.get("prepared") or manifest.get("training") or {}


def _flatten(prefix: str, value: Any) -> Iterable[tuple[str, str]]:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _flatten(f"{prefix}.{k}" if prefix else str(k), v)
    else:
        yield prefix, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def flat_settings(manifest: dict[str, Any], requirements: dict[str, Any]) -> list[tuple[str, str]]:
    """Every setting a run used, as dotted keys: task, model, data, arms, requirements, prepare records, index,
    the rounds of its race, versions."""
    arms = {p.get("name") or p.get("arm"): p for p in manifest.get("arms", [])}
    knowledge = {k: v for k, v in (manifest.get("knowledge") or {}).items() if k != "skipped"}
    sections: dict[str, Any] = {
        "run": {k: manifest.get(k) for k in ("run_id", "status", "created_at", "updated_at", "task_path", "task_fingerprint")},
        "versions": {"tunewise": manifest.get("tunewise_version"), "python": manifest.get("python")},
        "model": None if manifest.get("settings") else manifest.get("model"),
        "task": manifest.get("settings") or {},
        "metric": manifest.get("metric"),
        "requirements": requirements,
        "seed": manifest.get("seed"),
        "splits": manifest.get("splits"),
        "arms": arms,
        "prepared": prepared(manifest),
        "index": knowledge,
        "racing": {k: v for k, v in (manifest.get("racing") or {}).items() if k != "order"},
    }
    return [(k, v) for k, v in _flatten("", sections) if v not in ("null", "{}")]
