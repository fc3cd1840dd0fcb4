"""Evaluate a task: task -> examples -> arms -> model -> metric -> run store.

This is the measuring half of `tunewise run` (`tunewise.pipeline` adds the decision and the reports). It holds
the test targets and hands arms their queries only; it builds the index and trains off the event loop; it
records every answer as it comes, so a run interrupted at any moment resumes without paying twice.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tunewise.arms.base import ArmContext, ArmRecord, Result
from tunewise.arms.registry import arm_class, build_arm
from tunewise.calls.cache import ResponseCache
from tunewise.calls.caller import ModelCaller, Prices
from tunewise.data import Dataset, load_dataset
from tunewise.db import Database, connect
from tunewise.errors import InputError
from tunewise.evaluation.backend import check_model, local_source, open_model
from tunewise.evaluation.executors import Executor, check_executor, open_executor
from tunewise.evaluation.executors.worker import WorkerRun
from tunewise.evaluation.manifest import build_manifest, fingerprint, now, prepared
from tunewise.evaluation.runner import PrepareEvaluator, ProgressSink
from tunewise.evaluation.store import RunStore
from tunewise.files import check_folder
from tunewise.metrics import Metric, build_metric
from tunewise.spec import ExecutorSpec, Task
from tunewise.taskfile import load_task

if TYPE_CHECKING:
    from tunewise.knowledge.task_index import TaskIndex


@dataclass
class RunOptions:
    """How to run: where runs live, whether to resume one, whether to read the cache, and where to answer the test
    examples (`executor`, `ray_address`: override the task's `executor:`)."""

    runs_dir: Path = Path("runs")
    resume: str | None = None
    retry_errors: bool = False
    use_cache: bool = True
    skip_bad: bool = False
    db_path: Path | None = None
    executor: Literal["local", "ray"] | None = None
    ray_address: str | None = None
    progress: ProgressSink | None = field(default=None, repr=False)

    @property
    def database(self) -> Path:
        """The SQLite file holding the response cache, the call log and embeddings."""
        return self.db_path or self.runs_dir / "tunewise.db"


@dataclass(frozen=True)
class Inputs:
    """A task as a run takes it: read, its examples split, and checked (see `check_inputs`)."""

    task: Task
    dataset: Dataset


def executor_spec(task: Task, options: RunOptions) -> ExecutorSpec:
    """Where the test examples are answered: the task's `executor:`, as `--executor` and `--ray-address` change it
    (an address alone means ray)."""
    kind = options.executor or ("ray" if options.ray_address else task.executor.kind)
    if kind == "local" and options.ray_address:
        raise InputError("--ray-address is for --executor ray")
    return task.executor.model_copy(update={"kind": kind, "address": options.ray_address or task.executor.address})


def check_inputs(task: Task | str | Path, options: RunOptions | None = None) -> Inputs:
    """Everything input can be wrong about, found before a run folder is made, a model loaded or a call paid
    for: the task file, its data, what its arms need, its model, the executor, the runs folder, and the run to
    resume (read whole, changed in nothing). Raises InputError (ModelCallError when a model hub cannot be reached).

    Imports nothing heavy, so a bad input is told at once (`tunewise run` calls it before loading the rest)."""
    options = options or RunOptions()
    if options.retry_errors and options.resume is None:
        raise InputError("--retry-errors only applies to a resumed run (--resume RUN_ID)")
    if not isinstance(task, Task):
        task = load_task(task)
    check_folder(options.runs_dir)
    dataset = load_dataset(task)
    check_arms(task, dataset)
    check_model(task)
    check_executor(executor_spec(task, options))
    if options.resume is not None:
        store = RunStore.open(options.runs_dir, options.resume)
        if store.manifest.get("task_fingerprint") != fingerprint(task):
            raise InputError(
                f"the task or its data changed since run '{options.resume}' started; start a new run instead",
                file=task.path,
            )
        store.results()  # every line that is not a result is an error now, not after the run has started
    return Inputs(task, dataset)


def _open_store(inputs: Inputs, options: RunOptions) -> tuple[RunStore, str]:
    """The run's store, and the status to leave it in if the run stops before doing any work: a resumed run
    keeps the one it had (a complete run stays complete), a new one is interrupted."""
    if options.resume is None:
        manifest = build_manifest(inputs.task, inputs.dataset.sizes)
        return RunStore.create(options.runs_dir, inputs.task.name, manifest), "interrupted"
    store = RunStore.open(options.runs_dir, options.resume)
    previous = store.manifest.get("status") or "interrupted"
    store.repair()
    store.update_manifest(status="running")
    return store, previous


def check_arms(task: Task, dataset: Dataset) -> None:
    """What the arms need and the task lacks, found before anything is started or paid for."""
    for i, params in enumerate(task.arms):
        try:
            cls = arm_class(params.arm, task.base_dir, verify=params.verify is not None)
        except ValueError as e:
            raise task.error(str(e), "arms", i) from None
        cls.check(params, task, i)
        if params.needs_train and not dataset.train:
            raise task.error(f"arm '{params.label}' needs train examples, but the train split is empty", "arms", i)
        shown = getattr(params, params.demos_field) if params.demos_field else 0
        if shown > len(dataset.train):
            raise task.error(
                f"arm '{params.label}': {params.demos_field} {shown} is more than the {len(dataset.train)} train "
                f"examples (a prompt would show fewer than asked)", "arms", i, params.demos_field,
            )
        if params.needs_knowledge and task.knowledge is None:
            raise task.error(f"arm '{params.label}' reads the task's documents, but the task has no `knowledge:`", "arms", i)


@dataclass
class _Work:
    """Whether a run has begun any work (an arm with examples to answer): until then, stopping changes nothing."""

    begun: bool = False


async def _evaluate_arms(
    dataset: Dataset, context: ArmContext, caller: ModelCaller, store: RunStore, options: RunOptions, *,
    metric: Metric, concurrency: int, work: _Work, cleanup: AsyncExitStack,
) -> None:
    progress = options.progress
    executor: Executor | None = None

    def record(result: Result) -> None:
        store.append(result)
        if progress is not None:
            progress.advance(result.arm, result)

    done = store.latest()
    for params in context.task.arms:
        arm = build_arm(params, context)
        todo = [
            e
            for e in dataset.test
            if (arm.name, e.id) not in done or (options.retry_errors and done[(arm.name, e.id)].error)
        ]
        if progress:
            progress.start_arm(arm.name, len(dataset.test), len(dataset.test) - len(todo))
        if not todo:
            continue
        work.begun = True
        if executor is None:  # started for the first arm with work, before its prepare is paid for
            executor = await _start_executor(context.task, store, options, cleanup)
        kept: ArmRecord | None = await arm.prepare()
        try:
            if kept is not None:
                store.update_manifest(prepared={**prepared(store.manifest), arm.name: kept.model_dump(mode="json")})
            await executor.evaluate_arm(arm, todo, caller=arm.model_caller(caller), metric=metric,
                                        concurrency=concurrency, on_result=record)
        finally:
            await arm.aclose()


async def _start_executor(task: Task, store: RunStore, options: RunOptions, cleanup: AsyncExitStack) -> Executor:
    """The executor the run asks for, started, and named in the manifest's `executors` (one entry per start)."""
    run = WorkerRun(options.runs_dir.resolve(), store.run_id, options.database.resolve(), options.use_cache)
    executor = await open_executor(executor_spec(task, options), run)
    cleanup.push_async_callback(executor.aclose)
    store.update_manifest(executors=[*store.manifest.get("executors", []), executor.describe()])
    return executor


async def _knowledge(task: Task, db: Database, options: RunOptions) -> TaskIndex | None:
    """The task's index, brought up to date in a worker thread, when an arm reads the documents."""
    if not any(params.needs_knowledge for params in task.arms):
        return None
    from tunewise.knowledge.task_index import build_task_index

    return await asyncio.to_thread(
        build_task_index, task, db, options.runs_dir, skip_bad=options.skip_bad, loop=asyncio.get_running_loop()
    )


async def aevaluate(task: Task | Inputs | str | Path, options: RunOptions | None = None) -> RunStore:
    """Evaluate every arm of `task` on its test split into a run store (new, or the one resumed).

    Input errors surface before the run folder is made (`check_inputs`, unless given its `Inputs`); after that,
    whatever happens, the manifest says whether the run completed or was interrupted, and everything recorded
    stays recorded. A resumed run that stops before any work keeps the status it had.
    """
    options = options or RunOptions()
    inputs = task if isinstance(task, Inputs) else check_inputs(task, options)
    task, dataset = inputs.task, inputs.dataset
    async with AsyncExitStack() as cleanup:
        db = connect(options.database)
        cleanup.callback(db.close)
        knowledge = await _knowledge(task, db, options)
        if knowledge is not None:
            cleanup.push_async_callback(knowledge.index.embedder.aclose)
        source = await asyncio.to_thread(local_source, task.model, task.base_dir)
        model = await asyncio.to_thread(open_model, task.model, source)
        cleanup.push_async_callback(model.aclose)
        store, stopped = _open_store(inputs, options)
        cleanup.callback(store.close)
        work = _Work()
        try:
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
            concurrency = max(task.model.max_concurrency, task.model.batch_size)
            metric = build_metric(task.metric, task.base_dir)
            context = ArmContext(
                task=task, train=dataset.train, dev=dataset.dev, test=[e.query for e in dataset.test], db=db,
                knowledge=knowledge.index if knowledge else None, run_dir=store.dir, model_source=source,
                caller=caller, evaluate=PrepareEvaluator(caller, metric, concurrency, options.progress),
                on_training=options.progress.training if options.progress else None,
            )
            await _evaluate_arms(dataset, context, caller, store, options, metric=metric, concurrency=concurrency,
                                 work=work, cleanup=cleanup)
            store.update_manifest(status="complete", updated_at=now())
        except BaseException:
            if work.begun:
                store.update_manifest(status="interrupted", updated_at=now())
            else:
                store.update_manifest(status=stopped)
            raise
    return store
