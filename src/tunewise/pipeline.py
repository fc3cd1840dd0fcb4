"""What `tunewise run` does end to end: evaluate the task's arms, decide, write the reports.

    task -> evaluation (run store) -> decide (summary.json) -> report (report.md, report.html)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path

from tunewise.decide.schema import Summary
from tunewise.decide.summary import racing_drops, summary_of
from tunewise.evaluation.experiment import Inputs, RunOptions, aevaluate
from tunewise.evaluation.store import RunStore
from tunewise.report import write_reports
from tunewise.spec import Task


@dataclass
class RunOutcome:
    summary: Summary
    store: RunStore


async def arun(task: Task | Inputs | str | Path, options: RunOptions | None = None) -> RunOutcome:
    """Evaluate every arm of `task` (a file, a Task, or the Inputs `check_inputs` made of one) on its test split
    (in rounds, when it races: `racing_drops` judges them) and write summary.json and the reports."""
    options = options or RunOptions()
    store = await aevaluate(task, options if options.race else replace(options, race=racing_drops))
    results = list(store.latest().values())
    summary = summary_of(store, results)
    write_reports(store, summary, results)
    return RunOutcome(summary=summary, store=store)


def run(task: Task | Inputs | str | Path, options: RunOptions | None = None) -> RunOutcome:
    """Synchronous wrapper around `arun`."""
    return asyncio.run(arun(task, options))
