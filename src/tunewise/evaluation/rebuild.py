"""An arm a run measured, made again from the run: what a server serves and what a Ray worker answers with.

The task is the one the manifest recorded (not the task file as it is now), its data must be the data the run
read (the task fingerprint), its index the one the run searched (the index fingerprint, and the documents on
disk), its adapter or provider job the one the run trained, and its `prepare`, replayed from the response cache,
must make again what it made in the run (the same gate, the same demonstrations): otherwise it is refused, with
one line.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewise.arms.base import Arm, ArmContext
from tunewise.arms.registry import arm_class, build_arm
from tunewise.calls.cache import ResponseCache
from tunewise.calls.caller import ModelCaller
from tunewise.calls.log import CallSink
from tunewise.data import load_dataset
from tunewise.errors import InputError
from tunewise.evaluation.backend import local_source, open_model
from tunewise.evaluation.manifest import fingerprint, prepared
from tunewise.evaluation.runner import PrepareEvaluator
from tunewise.evaluation.store import RunStore
from tunewise.metrics import build_metric
from tunewise.spec import Task
from tunewise.taskfile import parse_task

if TYPE_CHECKING:
    from tunewise.arms.base import ArmRecord
    from tunewise.db import Database
    from tunewise.knowledge.index import KnowledgeIndex


@dataclass(frozen=True)
class Calls:
    """Where a rebuilt arm's calls go: the cache (which `prepare` always reads, and answers when `read_cache`),
    the run id its calls are logged under, and where the answers' calls and `prepare`'s replayed ones are logged."""

    cache: ResponseCache
    run_id: str
    read_cache: bool
    log: CallSink
    prepare_log: CallSink


@dataclass
class Rebuilt:
    """A prepared arm ready to answer, and the caller its answers go through."""

    task: Task
    arm: Arm
    caller: ModelCaller
    cleanup: AsyncExitStack

    async def aclose(self) -> None:
        await self.cleanup.aclose()


def recorded_task(manifest: dict[str, Any], why: str) -> Task:
    """The task as the run recorded it (its spec and its arms), refused when its data changed since; `why` says
    what cannot be done then (e.g. "what was measured cannot be served")."""
    spec = manifest.get("spec")
    if not isinstance(spec, dict):
        raise InputError(f"run '{manifest.get('run_id')}' did not record its task (made by an older tunewise): {why};"
                         " run the task again")
    base = manifest.get("base_dir") or (Path(manifest["task_path"]).parent if manifest.get("task_path") else None)
    task = parse_task({**spec, "arms": manifest["arms"]}, base)
    if fingerprint(task) != manifest.get("task_fingerprint"):
        raise InputError(f"the data of run '{manifest['run_id']}' changed since it ran ({task.data_path}): {why};"
                         " run the task again")
    return task


async def recorded_index(task: Task, db: Database, runs_dir: Path, manifest: dict[str, Any], why: str
                         ) -> KnowledgeIndex:
    """The index the run searched, opened as it is: refused when the documents or the index changed since."""
    from tunewise.knowledge.task_index import build_task_index

    built = await asyncio.to_thread(build_task_index, task, db, runs_dir, update=False, loop=asyncio.get_running_loop())
    recorded = (manifest.get("knowledge") or {}).get("fingerprint")
    if recorded is not None and built.index.fingerprint() != recorded:
        raise InputError(f"the index of run '{manifest['run_id']}' ({built.index.directory}) was rebuilt on other"
                         f" documents since it ran: {why}; run the task again")
    return built.index


def check_same_preparation(cls: type[Arm], name: str, now: ArmRecord | None, recorded: dict[str, Any] | None,
                           why: str) -> None:
    """`prepare` made again what the run made, or InputError."""
    if now is None or recorded is None:
        if (now is None) != (recorded is None):
            raise InputError(f"arm '{name}' prepared differently than in the run: {why}")
        return
    differs = now.differs(cls.Record.model_validate(recorded))
    if differs:
        raise InputError(f"arm '{name}' prepared differently than in the run ({', '.join(differs)} differ): {why};"
                         " run the task again")


async def rebuild_arm(store: RunStore, task: Task, name: str, db: Database, *, runs_dir: Path, calls: Calls,
                      test_queries: bool, why: str) -> Rebuilt:
    """Arm `name` of run `store` (whose recorded task is `task`), built on `db`, with its own model, and prepared
    again from the cache as the run prepared it (never trained anew). With `test_queries` it is told the test
    queries, as the run's arm was (not when serving queries nobody knew in advance)."""
    params = next(p for p in task.arms if p.label == name)
    cls = arm_class(params.arm, task.base_dir, verify=params.verify is not None)
    dataset = load_dataset(task)
    cleanup = AsyncExitStack()
    try:
        knowledge = None
        if params.needs_knowledge:
            knowledge = await recorded_index(task, db, runs_dir, store.manifest, why)
            cleanup.push_async_callback(knowledge.embedder.aclose)
        source = await asyncio.to_thread(local_source, task.model, task.base_dir)
        model = await asyncio.to_thread(open_model, task.model, source)
        cleanup.push_async_callback(model.aclose)

        def caller(*, preparing: bool) -> ModelCaller:
            return ModelCaller(model, calls.cache, prices=cls.prices(params, task.model), run_id=calls.run_id,
                               temperature=task.model.temperature, max_tokens=task.model.max_tokens,
                               read_cache=preparing or calls.read_cache,
                               log=calls.prepare_log if preparing else calls.log)

        # What the run's prepare did is in the cache; reading it back is how it is made again, not measured again.
        preparing = caller(preparing=True)
        concurrency = max(task.model.max_concurrency, task.model.batch_size)
        context = ArmContext(
            task=task, train=dataset.train, dev=dataset.dev, test=[e.query for e in dataset.test] if test_queries else [], db=db, knowledge=knowledge,
            run_dir=store.dir, model_source=source, caller=preparing,
            evaluate=PrepareEvaluator(preparing, build_metric(task.metric, task.base_dir), concurrency), serving=True,
        )
        arm = build_arm(params, context)
        record = await arm.prepare()
        cleanup.push_async_callback(arm.aclose)
        check_same_preparation(cls, name, record, prepared(store.manifest).get(name), why)
        return Rebuilt(task, arm, arm.model_caller(caller(preparing=False)), cleanup)
    except BaseException:
        await cleanup.aclose()
        raise
