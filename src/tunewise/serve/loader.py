"""The arm a run measured, rebuilt from the run's manifest: what is served is what was measured.

The rebuilding, and what refuses it (data, documents, index, adapter, job or preparation other than what the run
had), is `tunewise.evaluation.rebuild`'s, shared with the Ray executor's workers; the server refuses to start,
with one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tunewise.arms.base import Arm
from tunewise.calls.cache import ResponseCache
from tunewise.calls.caller import ModelCaller
from tunewise.calls.log import CallLog
from tunewise.db import Database, connect
from tunewise.errors import InputError
from tunewise.evaluation.rebuild import Calls, Rebuilt, rebuild_arm, recorded_task
from tunewise.evaluation.store import RunStore
from tunewise.spec import Task

CANNOT_SERVE = "what was measured cannot be served"


@dataclass
class ServedArm:
    """A prepared arm ready to answer, with what it answers through, and how it is named to clients."""

    run_id: str
    rebuilt: Rebuilt
    db: Database

    @property
    def task(self) -> Task:
        return self.rebuilt.task

    @property
    def arm(self) -> Arm:
        return self.rebuilt.arm

    @property
    def caller(self) -> ModelCaller:
        return self.rebuilt.caller

    @property
    def model_id(self) -> str:
        return f"tunewise/{self.task.name}/{self.arm.name}"

    async def aclose(self) -> None:
        try:
            await self.rebuilt.aclose()
        finally:
            self.db.close()


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
    task = recorded_task(store.manifest, CANNOT_SERVE)
    name = chosen_arm(store, task, arm)
    db = connect(runs_dir / "tunewise.db")
    try:
        log = CallLog(db)
        calls = Calls(ResponseCache(db), f"serve:{run_id}", read_cache, log=log, prepare_log=log)
        rebuilt = await rebuild_arm(store, task, name, db, runs_dir=runs_dir, calls=calls, test_queries=False,
                                    why=CANNOT_SERVE)
    except BaseException:
        db.close()
        raise
    return ServedArm(run_id, rebuilt, db)
