"""tunewise: prompt, retrieve, vote, or fine-tune? Measure it on your task.

    import tunewise
    outcome = tunewise.run("task.yaml")
    print(outcome.summary.recommendation)

Your own arm: subclass `tunewise.Arm` (its `Params` a subclass of `tunewise.ArmParams`), answer a
`tunewise.Query` with a `tunewise.Answer`, and name it in a task as `python:module:Class`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunewise.version import __version__

if TYPE_CHECKING:
    from tunewise.arms.base import Answer, AnswerMeta, Arm, ArmContext, ArmExtras, ArmRecord, Result
    from tunewise.data import Example, Query
    from tunewise.decide.compare import compare_runs
    from tunewise.evaluation.experiment import RunOptions
    from tunewise.pipeline import RunOutcome, arun, run
    from tunewise.report import report_run
    from tunewise.spec import ArmParams, Task
    from tunewise.taskfile import load_task, parse_task

_LAZY = {
    "RunOptions": "tunewise.evaluation.experiment",
    "RunOutcome": "tunewise.pipeline",
    "arun": "tunewise.pipeline",
    "run": "tunewise.pipeline",
    "Task": "tunewise.spec",
    "ArmParams": "tunewise.spec",
    "load_task": "tunewise.taskfile",
    "parse_task": "tunewise.taskfile",
    "report_run": "tunewise.report",
    "compare_runs": "tunewise.decide.compare",
    "Arm": "tunewise.arms.base",
    "ArmContext": "tunewise.arms.base",
    "Answer": "tunewise.arms.base",
    "AnswerMeta": "tunewise.arms.base",
    "ArmExtras": "tunewise.arms.base",
    "ArmRecord": "tunewise.arms.base",
    "Result": "tunewise.arms.base",
    "Query": "tunewise.data",
    "Example": "tunewise.data",
}

__all__ = [
    "Answer", "AnswerMeta", "Arm", "ArmContext", "ArmExtras", "ArmParams", "ArmRecord", "Example", "Query", "Result",
    "RunOptions", "RunOutcome", "Task", "__version__", "arun", "compare_runs", "load_task", "parse_task",
    "report_run", "run",
]


def __getattr__(name: str) -> Any:
    """Public names load on first use, so `import tunewise` (and `tunewise --help`) stays fast."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tunewise' has no attribute {name!r}")
