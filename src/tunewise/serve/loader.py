"""The arm a run measured, rebuilt from the run's manifest: what is served is what was measured.

The task is the one the manifest recorded (not the task file as it is now), its data must be the data the run
read (the task fingerprint), its index the one the run searched (the index fingerprint, and the documents on
disk), its adapter or provider job the one the run trained, and its `prepare` must make again what it made in
the run (the same gate, the same demonstrations): otherwise the server refuses to start, with one line.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewise.arms.base import Arm, ArmContext
from tunewise.arms.registry import arm_class, build_arm
from tunewise.calls.cache import ResponseCache
from tunewise.calls.caller import ModelCaller
from tunewise.data import Dataset, load_dataset
from tunewise.db import Database, connect
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
    from tunewise.knowledge.index import KnowledgeIndex


@dataclass
class ServedArm:
    """A prepared arm ready to answer, with what it answers through, and how it is named to clients."""

    run_id: str
    task: Task
    arm: Arm
    caller: ModelCaller
    db: Database
    cleanup: AsyncExitStack

    @property
    def model_id(self) -> str:
        return f"tunewise/{self.task.name}/{self.arm.name}"

    async def aclose(self) -> None:
        await self.cleanup.aclose()


def recorded_task(manifest: dict[str, Any]) -> Task:
    """The task as the run recorded it (its spec and its arms), refused when its data changed since."""
    spec = manifest.get("spec")
    if not isinstance(spec, dict):
        raise InputError(f"run '{manifest.get('run_id')}' did not record its task (made by an older tunewise):"
                         " run the task again to serve it")
    base = manifest.get("base_dir") or (Path(manifest["task_path"]).parent if manifest.get("task_path") else None)
    task = parse_task({**spec, "arms": manifest["arms"]}, base)
    if fingerprint(task) != manifest.get("task_fingerprint"):
        raise InputError(f"the data of run '{manifest['run_id']}' changed since it ran ({task.data_path}): what was"
                         " measured cannot be served; run the task again")
    return task


def chosen_arm(store: RunStore, task: Task, name: str | None) -> str:
    """The arm to serve: the named one, else the run's recommendation."""
    names = [a.label for a in task.arms]
    if name is not None:
        if name not in names:
            raise InputError(f"run '{store.run_id}' has no arm '{name}' (its arms: {', '.join(names)})")
        return name
    summary = store.dir / "summary.json"
    recommended = json.loads(summary.read_text(encoding="utf-8"))["recommendation"]["arm"] if summary.is_file() else None
    if recommended is None:
        raise InputError(f"run '{store.run_id}' recommends no arm yet: name one with --arm ({', '.join(names)})")
    return recommended


async def load_arm(run_id: str, runs_dir: Path = Path("runs"), *, arm: str | None = None, read_cache: bool = True
                   ) -> ServedArm:
    """Rebuild and prepare the arm run `run_id` measured (its recommended one unless `arm` names another)."""
    store = RunStore.open(runs_dir, run_id)
    manifest = store.manifest
    task = recorded_task(manifest)
    name = chosen_arm(store, task, arm)
    params = next(p for p in task.arms if p.label == name)
    cls = arm_class(params.arm, task.base_dir, verify=params.verify is not None)
    dataset: Dataset = load_dataset(task)
    cleanup = AsyncExitStack()
    try:
        db = connect(runs_dir / "tunewise.db")
        cleanup.callback(db.close)
        knowledge = None
        if params.needs_knowledge:
            knowledge = await _recorded_index(task, db, runs_dir, manifest)
            cleanup.push_async_callback(knowledge.embedder.aclose)
        source = await asyncio.to_thread(local_source, task.model, task.base_dir)
        model = await asyncio.to_thread(open_model, task.model, source)
        cleanup.push_async_callback(model.aclose)
        def calling(cached: bool) -> ModelCaller:
            return ModelCaller(model, ResponseCache(db), prices=cls.prices(params, task.model), run_id=f"serve:{run_id}",
                               temperature=task.model.temperature, max_tokens=task.model.max_tokens, read_cache=cached)

        caller = calling(read_cache)
        # What the run's prepare did is in the cache; reading it back is how it is made again, not measured again.
        preparing = calling(True)
        concurrency = max(task.model.max_concurrency, task.model.batch_size)
        context = ArmContext(
            task=task, train=dataset.train, dev=dataset.dev, test=[], db=db, knowledge=knowledge, run_dir=store.dir,
            model_source=source, caller=preparing,
            evaluate=PrepareEvaluator(preparing, build_metric(task.metric, task.base_dir), concurrency), serving=True,
        )
        served = build_arm(params, context)
        record = await served.prepare()
        cleanup.push_async_callback(served.aclose)
        _check_same_preparation(cls, name, record, prepared(manifest).get(name))
        return ServedArm(run_id, task, served, served.model_caller(caller), db, cleanup)
    except BaseException:
        await cleanup.aclose()
        raise


async def _recorded_index(task: Task, db: Database, runs_dir: Path, manifest: dict[str, Any]) -> KnowledgeIndex:
    """The index the run searched, opened as it is: refused when the documents or the index changed since."""
    from tunewise.knowledge.task_index import build_task_index

    built = await asyncio.to_thread(build_task_index, task, db, runs_dir, update=False, loop=asyncio.get_running_loop())
    recorded = (manifest.get("knowledge") or {}).get("fingerprint")
    if recorded is not None and built.index.fingerprint() != recorded:
        raise InputError(f"the index of run '{manifest['run_id']}' ({built.index.directory}) was rebuilt on other"
                         " documents since it ran: what was measured cannot be served; run the task again")
    return built.index


def _check_same_preparation(cls: type[Arm], name: str, now: ArmRecord | None, recorded: dict[str, Any] | None) -> None:
    """`prepare` made again what the run made, or the server does not start."""
    if now is None or recorded is None:
        if (now is None) != (recorded is None):
            raise InputError(f"arm '{name}' prepared differently than in the run: what was measured cannot be served")
        return
    then = cls.Record.model_validate(recorded)
    differs = now.differs(then)
    if differs:
        raise InputError(f"arm '{name}' prepared differently than in the run ({', '.join(differs)} differ): what was"
                         " measured cannot be served; run the task again")
