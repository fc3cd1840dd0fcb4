"""tunewise: prompt, retrieve, vote, or fine-tune? Measure it on your task.

    import tunewise
    outcome = tunewise.run("task.yaml")
    print(outcome.summary.recommendation)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from tunewise.compare import compare_runs
    from tunewise.experiment import RunOptions, RunOutcome, arun, run
    from tunewise.report import report_run
    from tunewise.task import Task, load_task

_LAZY = {
    "RunOptions": "tunewise.experiment",
    "RunOutcome": "tunewise.experiment",
    "arun": "tunewise.experiment",
    "run": "tunewise.experiment",
    "Task": "tunewise.task",
    "load_task": "tunewise.task",
    "report_run": "tunewise.report",
    "compare_runs": "tunewise.compare",
}

__all__ = ["RunOptions", "RunOutcome", "Task", "__version__", "arun", "compare_runs", "load_task", "report_run", "run"]


def __getattr__(name: str) -> Any:
    """Public names load on first use, so `import tunewise` (and `tunewise --help`) stays fast."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tunewise' has no attribute {name!r}")
