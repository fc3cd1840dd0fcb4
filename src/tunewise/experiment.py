"""Run a task end to end: task -> examples -> arms -> model -> metric -> store -> decide -> report.

This is the library entry point behind `tunewise run`; the CLI only parses and prints.
"""

from __future__ import annotations

import asyncio
import platform
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from tunewise import __version__
from tunewise.arms import ArmContext, build_arm
from tunewise.cache import ResponseCache
from tunewise.caller import ModelCaller, Prices
from tunewise.data import Dataset, load_dataset
from tunewise.db import connect
from tunewise.decide import Summary
from tunewise.errors import InputError
from tunewise.models import open_model
from tunewise.report import write_reports
from tunewise.runner import ProgressSink, evaluate_arm
from tunewise.store import RunStore
from tunewise.summary import summary_of
from tunewise.task import Task, load_task


@dataclass
class RunOptions:
    """How to run: where runs live, whether to resume one, and whether to read the cache."""

    runs_dir: Path = Path("runs")
    resume: str | None = None
    retry_errors: bool = False
    use_cache: bool = True
    skip_bad: bool = False
    db_path: Path | None = None
    progress: ProgressSink | None = field(default=None, repr=False)

    @property
    def database(self) -> Path:
        """The SQLite file holding the response cache, the call log and embeddings."""
        return self.db_path or self.runs_dir / "tunewise.db"


@dataclass
class RunOutcome:
    summary: Summary
    store: RunStore


def _manifest(task: Task, sizes: dict[str, int]) -> dict[str, object]:
    return {
        "task": task.name,
        "task_path": str(task.path.resolve()) if task.path else None,
        "task_fingerprint": task.fingerprint(),
        "tunewise_version": __version__,
        "python": platform.python_version(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": task.model.uri,
        "metric": task.metric.model_dump(exclude_none=True),
        "arms": [a.model_dump(mode="json") for a in task.arms],
        "arm_names": [a.label for a in task.arms],
        "requirements": task.requirements.model_dump(exclude_none=True),
        "seed": task.seed,
        "splits": sizes,
        "settings": task.model_dump(mode="json", exclude={"name", "arms", "metric", "requirements", "seed"}),
        "status": "running",
    }


def _open_store(task: Task, options: RunOptions, sizes: dict[str, int]) -> RunStore:
    if options.resume is None:
        if options.retry_errors:
            raise InputError("--retry-errors only applies to a resumed run (--resume RUN_ID)")
        return RunStore.create(options.runs_dir, task.name, _manifest(task, sizes))
    store = RunStore.open(options.runs_dir, options.resume)
    if store.manifest.get("task_fingerprint") != task.fingerprint():
        raise InputError(
            f"the task or its data changed since run '{options.resume}' started; start a new run instead",
            file=task.path,
        )
    store.repair()
    store.update_manifest(status="running")
    return store


def _check_arms(task: Task, dataset: Dataset) -> None:
    """What the arms need and the task lacks, found before anything is started or paid for."""
    for i, params in enumerate(task.arms):
        params.check(task, i)
        if params.needs_train and not dataset.train:
            raise task.error(f"arm '{params.label}' needs train examples, but the train split is empty", "arms", i)
        if params.needs_knowledge and task.knowledge is None:
            raise task.error(f"arm '{params.label}' reads the task's documents, but the task has no `knowledge:`", "arms", i)


async def _evaluate_arms(
    task: Task, dataset: Dataset, context: ArmContext, caller: ModelCaller, store: RunStore, options: RunOptions
) -> None:
    metric = task.metric.build(task.base_dir)
    done = store.latest()
    for params in task.arms:
        arm = build_arm(params, context)
        todo = [
            e
            for e in dataset.test
            if (arm.name, e.id) not in done or (options.retry_errors and done[(arm.name, e.id)].error)
        ]
        if options.progress:
            options.progress.start_arm(arm.name, len(dataset.test), len(dataset.test) - len(todo))
        if not todo:
            continue
        await arm.prepare()
        try:
            if arm.record:
                store.update_manifest(training={**store.manifest.get("training", {}), arm.name: arm.record})
            await evaluate_arm(
                arm,
                todo,
                caller=arm.caller(caller),
                metric=metric,
                store=store,
                concurrency=max(task.model.max_concurrency, task.model.batch_size),
                progress=options.progress,
            )
        finally:
            await arm.aclose()


async def arun(task: Task | str | Path, options: RunOptions | None = None) -> RunOutcome:
    """Evaluate every arm of `task` on its test split and write summary.json and the reports.

    Input errors surface before the run folder is made; after that, whatever happens, the manifest
    says whether the run completed or was interrupted, and everything recorded stays recorded.
    """
    options = options or RunOptions()
    if not isinstance(task, Task):
        task = load_task(task)
    dataset = load_dataset(task)
    _check_arms(task, dataset)
    async with AsyncExitStack() as cleanup:
        db = connect(options.database)
        cleanup.callback(db.close)
        knowledge = None
        if any(params.needs_knowledge for params in task.arms):
            from tunewise.knowledge.task_index import build_task_index

            knowledge = build_task_index(task, db, options.runs_dir, skip_bad=options.skip_bad)
        model = open_model(task.model, task.base_dir)
        cleanup.push_async_callback(model.aclose)
        store = _open_store(task, options, dataset.sizes)
        cleanup.callback(store.close)
        if knowledge is not None:
            store.update_manifest(knowledge=knowledge.describe())
        if options.progress:
            options.progress.start_run(store.run_id, str(store.dir))
        caller = ModelCaller(
            model,
            ResponseCache(db),
            prices=Prices(task.model.price_in_per_1m, task.model.price_out_per_1m),
            run_id=store.run_id,
            temperature=task.model.temperature,
            max_tokens=task.model.max_tokens,
            read_cache=options.use_cache,
        )
        context = ArmContext(
            task=task, dataset=dataset, db=db, knowledge=knowledge.index if knowledge else None,
            run_dir=store.dir, progress=options.progress, caller=caller,
        )
        status = "interrupted"
        try:
            await _evaluate_arms(task, dataset, context, caller, store, options)
            status = "complete"
        finally:
            store.update_manifest(status=status, updated_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    summary = summary_of(store)
    write_reports(store, summary)
    return RunOutcome(summary=summary, store=store)


def run(task: Task | str | Path, options: RunOptions | None = None) -> RunOutcome:
    """Synchronous wrapper around `arun`."""
    return asyncio.run(arun(task, options))
