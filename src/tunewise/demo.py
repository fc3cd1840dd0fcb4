"""`tunewise demo`: the whole ladder on the lab, offline, with no API key.

Builds (or reuses) the default lab world and its model, then runs every lab task with the arms
its task file lists, writing one run per task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tunewise.evaluation.experiment import RunOptions
from tunewise.evaluation.runner import ProgressSink
from tunewise.pipeline import RunOutcome, arun
from tunewise.taskfile import load_task

QUICK_MAX_TEST = 40


@dataclass
class DemoResult:
    world: Path
    model: Path
    outcomes: list[RunOutcome]


async def arun_demo(
    *,
    runs_dir: Path = Path("runs"),
    quick: bool = False,
    progress: ProgressSink | None = None,
    on_training: Callable[[int, int, float], None] | None = None,
) -> DemoResult:
    """Run every lab task; `quick` uses the small lab model and at most 40 test examples per task."""
    from tunewise.lab import build_model, default_world_dir

    world = default_world_dir()
    model = build_model(world, quick=quick, progress=on_training)
    outcomes = []
    for task_file in sorted((world / "tasks").glob("*/task.yaml")):
        task = load_task(task_file)
        if quick:
            task.data.max_test = QUICK_MAX_TEST
            task.model.uri = f"hf:{model}"
        outcomes.append(await arun(task, RunOptions(runs_dir=runs_dir, progress=progress)))
    return DemoResult(world=world, model=model, outcomes=outcomes)
