"""Evaluate a task: task -> examples -> arms -> model -> metric -> run store.

This is the measuring half of `tunewise run` (`tunewise.pipeline` adds the decision and the reports). It holds
the test targets and hands arms their queries only; it builds the index and trains off the event loop; it
records every answer as it comes, so a run interrupted at any moment resumes without paying twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tunewise.arms.base import Arm, ArmContext, Result
from tunewise.arms.registry import arm_class, build_arm
from tunewise.calls.cache import ResponseCache
from tunewise.calls.caller import ModelCaller, Prices
from tunewise.data import Dataset, Example, load_dataset
from tunewise.db import Database, connect
from tunewise.errors import InputError
from tunewise.evaluation.backend import check_model, local_source, open_model
from tunewise.evaluation.executors import Executor, check_executor, open_executor
from tunewise.evaluation.executors.worker import WorkerRun
from tunewise.evaluation.manifest import (
    BUDGET_REACHED, RacingPlan, build_manifest, fingerprint, now, prepared, racing_plan,
)
from tunewise.evaluation.runner import PrepareEvaluator, ProgressSink
from tunewise.evaluation.store import RunStore
from tunewise.files import check_folder
from tunewise.metrics import Metric, build_metric
from tunewise.spec import ArmParams, ExecutorSpec, RacingSpec, Task
from tunewise.taskfile import load_task

if TYPE_CHECKING:
    from tunewise.knowledge.task_index import TaskIndex


RaceJudge = Callable[[RunStore], Collection[str]]
"""The arms a racing run has dropped so far, recomputed from its store (`tunewise.decide.summary.racing_drops`)."""


@dataclass
class RunOptions:
    """How to run: where runs live, whether to resume one, whether to read the cache, and where to answer the test
    examples (`executor`, `ray_address`: override the task's `executor:`).

    `racing` races the arms (the task's `racing:` settings, else the defaults) in a new run; `race` says which arms
    the recorded results drop (`tunewise.pipeline` passes it: the decision is not this layer's). `budget` stops the
    run once it has spent that many US$."""

    runs_dir: Path = Path("runs")
    resume: str | None = None
    retry_errors: bool = False
    use_cache: bool = True
    skip_bad: bool = False
    db_path: Path | None = None
    executor: Literal["local", "ray"] | None = None
    ray_address: str | None = None
    racing: bool = False
    budget: float | None = None
    race: RaceJudge | None = field(default=None, repr=False)
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
    if options.budget is not None and not options.budget > 0:
        raise InputError(f"--budget must be a positive amount of US$, not {options.budget:g}")
    if options.resume is not None:
        store = RunStore.open(options.runs_dir, options.resume)
        if store.manifest.get("task_fingerprint") != fingerprint(task):
            raise InputError(
                f"the task or its data changed since run '{options.resume}' started; start a new run instead",
                file=task.path,
            )
        store.results()  # every line that is not a result is an error now, not after the run has started
        if options.racing and store.manifest.get("racing") is None:
            raise InputError(f"run '{options.resume}' was started without racing, and whether a run races is decided"
                             " when it starts: resume it without --racing, or start a new run")
    return Inputs(task, dataset)


def _racing(task: Task, options: RunOptions, dataset: Dataset) -> RacingPlan | None:
    """The rounds of a new run: the task's `racing:`, or its defaults for --racing; None when it does not race."""
    spec = task.racing or (RacingSpec() if options.racing else None)
    return None if spec is None else racing_plan(spec, [e.id for e in dataset.test], task.seed)


def _open_store(inputs: Inputs, options: RunOptions) -> tuple[RunStore, str]:
    """The run's store, and the status to leave it in if the run stops before doing any work: a resumed run
    keeps the one it had (a complete run stays complete), a new one is interrupted."""
    if options.resume is None:
        manifest = build_manifest(inputs.task, inputs.dataset.sizes, _racing(inputs.task, options, inputs.dataset))
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


class BudgetReached(Exception):
    """The run spent its budget: it stops, resumable, its results so far recorded."""


class _Spend:
    """What the run has spent, in US$: the calls it sent (every result's `fresh_cost`, also of results an earlier
    invocation recorded) and its arms' one-off `prepare` costs; and the budget it may spend (None: no limit)."""

    def __init__(self, store: RunStore, limit: float | None):
        self.limit = limit
        self._prepared = {name: float(r.get("fixed_cost", 0.0)) for name, r in prepared(store.manifest).items()}
        self.spent = sum(r.fresh_cost for r in store.results()) + sum(self._prepared.values())

    def add(self, result: Result) -> None:
        self.spent += result.fresh_cost

    def prepared(self, arm: str, fixed_cost: float) -> None:
        self.spent += fixed_cost - self._prepared.get(arm, 0.0)
        self._prepared[arm] = fixed_cost

    def reached(self) -> bool:
        return self.limit is not None and self.spent >= self.limit

    def check(self) -> None:
        if self.reached():
            raise BudgetReached(f"${self.spent:.4g} spent of a ${self.limit:g} budget")


def _rounds(store: RunStore, dataset: Dataset) -> list[list[Example]]:
    """The test examples of each round: the nested shares of the run's racing plan, or all of them at once."""
    plan = store.manifest.get("racing")
    if plan is None:
        return [list(dataset.test)]
    by_id = {e.id: e for e in dataset.test}
    race = RacingPlan.model_validate(plan)
    return [[by_id[i] for i in race.order[:size]] for size in race.sizes]


async def _evaluate_arms(
    dataset: Dataset, context: ArmContext, caller: ModelCaller, store: RunStore, options: RunOptions, *,
    metric: Metric, concurrency: int, work: _Work, spend: _Spend, cleanup: AsyncExitStack,
) -> None:
    """Every arm on the test examples, round by round: one round (all of them) unless the run races. A racing run
    asks `options.race` before each round after the first which arms the recorded results drop, and evaluates the
    others on the round's examples; an arm is prepared when it first has examples to answer (a dropped arm is never
    prepared again on resume) and kept until its last round."""
    progress = options.progress
    executor: Executor | None = None
    rounds = _rounds(store, dataset)
    if len(rounds) > 1 and options.race is None:
        raise ValueError("a racing run needs RunOptions.race, the judge of its rounds (tunewise.pipeline passes it)")
    done = store.latest()
    started: set[str] = set()
    live: dict[str, Arm] = {}

    def record(result: Result) -> None:
        store.append(result)
        done[(result.arm, result.example_id)] = result
        spend.add(result)
        if progress is not None:
            progress.advance(result.arm, result)

    async def close(name: str) -> None:
        arm = live.pop(name, None)
        if arm is not None:
            await arm.aclose()

    try:
        for r, examples in enumerate(rounds):
            dropped = set(options.race(store)) if r and options.race is not None else set()
            for params in context.task.arms:
                name = params.label
                if name in dropped:
                    await close(name)
                    continue
                todo = _todo(name, examples, done, options.retry_errors)
                if progress and name not in started:
                    progress.start_arm(name, len(dataset.test), len(dataset.test) - len(_todo(
                        name, dataset.test, done, options.retry_errors)))
                started.add(name)
                if todo:
                    work.begun = True
                    spend.check()
                    if executor is None:  # started for the first arm with work, before its prepare is paid for
                        executor = await _start_executor(context.task, store, options, cleanup)
                    arm = live.get(name) or await _prepare(params, context, store, spend, live)
                    await executor.evaluate_arm(arm, todo, caller=arm.model_caller(caller), metric=metric,
                                                concurrency=concurrency, on_result=record, stop=spend.reached)
                    spend.check()
                if r == len(rounds) - 1:
                    await close(name)
    finally:
        for name in list(live):
            await close(name)


def _todo(arm: str, examples: Sequence[Example], done: dict[tuple[str, str], Result], retry: bool) -> list[Example]:
    """The examples an arm has no result for (or, with `retry`, an errored one)."""
    return [e for e in examples if (arm, e.id) not in done or (retry and done[(arm, e.id)].error)]


async def _prepare(params: ArmParams, context: ArmContext, store: RunStore, spend: _Spend, live: dict[str, Arm]
                   ) -> Arm:
    """The arm built and prepared (held in `live` until closed), its prepare record kept in the manifest."""
    arm = build_arm(params, context)
    kept = await arm.prepare()
    live[arm.name] = arm
    if kept is not None:
        store.update_manifest(prepared={**prepared(store.manifest), arm.name: kept.model_dump(mode="json")})
        spend.prepared(arm.name, kept.fixed_cost)
        spend.check()
    return arm


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


def _budget(spend: _Spend) -> dict[str, float] | None:
    """The manifest's `budget`: the limit of this invocation and what the run had spent at its end."""
    return None if spend.limit is None else {"usd": spend.limit, "spent": spend.spent}


async def aevaluate(task: Task | Inputs | str | Path, options: RunOptions | None = None) -> RunStore:
    """Evaluate every arm of `task` on its test split into a run store (new, or the one resumed).

    Input errors surface before the run folder is made (`check_inputs`, unless given its `Inputs`); after that,
    whatever happens, the manifest says whether the run completed, was interrupted or reached its budget
    (`BUDGET_REACHED`: returned, not raised), and everything recorded stays recorded. A resumed run that stops
    before any work keeps the status it had.
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
        spend = _Spend(store, options.budget)
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
                                 work=work, spend=spend, cleanup=cleanup)
            store.update_manifest(status="complete", updated_at=now(), budget=_budget(spend))
        except BudgetReached:
            store.update_manifest(status=BUDGET_REACHED, updated_at=now(), budget=_budget(spend))
        except BaseException:
            if work.begun:
                store.update_manifest(status="interrupted", updated_at=now())
            else:
                store.update_manifest(status=stopped)
            raise
    return store
