"""A Ray worker's side of the ray executor: the prepared arm rebuilt from the run, answering the queries it is sent.

The worker writes nothing: it reads the run's database read-only, buffers the responses and call-log rows it would
have written, and sends each answer back with them (`Writes`) for the driver to write. It never sees a target:
it is sent queries, and the driver scores. What it answers with is exactly what the run prepared (see
`tunewise.evaluation.rebuild`), or it refuses, in one line. It holds one arm at a time, rebuilt on the first query
for it. This module is plain Python, so that it imports without Ray; `ray.py` makes an actor of `ArmWorker`.
"""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from tunewise.calls.buffer import BufferedCache, BufferedLog, Writes
from tunewise.data import Query
from tunewise.db import Database, connect_readonly
from tunewise.errors import InputError, ModelCallError
from tunewise.evaluation.rebuild import Calls, Rebuilt, rebuild_arm, recorded_task
from tunewise.evaluation.runner import Answered, answered
from tunewise.evaluation.store import RunStore

WHY = "a Ray worker cannot answer as the run measured"


@dataclass(frozen=True)
class WorkerRun:
    """Where a worker finds the run it answers for (absolute paths, the same on every node), and whether its
    answers read the cache."""

    runs_dir: Path
    run_id: str
    database: Path
    read_cache: bool


@dataclass(frozen=True)
class Reply:
    """An answer (or its error), what its calls took, and what the worker would have written."""

    answered: Answered
    writes: Writes


@dataclass(frozen=True)
class Stopped:
    """A model call that stops the run (`ModelCallError.stops_run`), as data: an exception loses its fields on its
    way to the driver. `writes` holds the failed calls."""

    message: str
    status: int | None
    writes: Writes | None


@dataclass(frozen=True)
class Refused:
    """The worker cannot rebuild the arm as the run prepared it (an InputError's one line)."""

    message: str


@dataclass
class _Loaded:
    name: str
    rebuilt: Rebuilt
    cache: BufferedCache
    log: BufferedLog
    db: Database

    async def aclose(self) -> None:
        try:
            await self.rebuilt.aclose()
        finally:
            self.db.close()


class ArmWorker:
    """One worker: rebuilds an arm of the run on the first query for it, then answers queries concurrently."""

    def __init__(self, run: WorkerRun):
        self.run = run
        self._loaded: _Loaded | None = None
        self._refused: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def pid(self) -> int:
        """This worker's process id."""
        return os.getpid()

    async def answer(self, arm: str, query: Query) -> Reply | Stopped | Refused:
        """Arm `arm`'s answer to `query`, with what answering it would have written."""
        try:
            loaded = await self._load(arm)
        except InputError as e:
            return Refused(str(e))
        except ModelCallError as e:  # the model cannot be opened here: no query would be answered
            return Stopped(str(e), e.status, None)
        lm = loaded.rebuilt.caller.for_example(arm, query.id)
        try:
            done = await answered(arm, lm, lambda lm: loaded.rebuilt.arm.answer(query, lm))
        except ModelCallError as e:
            return Stopped(str(e), e.status, loaded.cache.writes(loaded.log.take(arm, query.id)))
        return Reply(done, loaded.cache.writes(loaded.log.take(arm, query.id)))

    async def aclose(self) -> None:
        """Release the arm held."""
        async with self._lock:
            if self._loaded is not None:
                await self._loaded.aclose()
                self._loaded = None

    async def _load(self, name: str) -> _Loaded:
        async with self._lock:
            if name in self._refused:
                raise InputError(self._refused[name])
            if self._loaded is not None and self._loaded.name == name:
                return self._loaded
            if self._loaded is not None:
                await self._loaded.aclose()
                self._loaded = None
            try:
                self._loaded = await self._rebuild(name)
            except InputError as e:
                self._refused[name] = str(e)
                raise
            return self._loaded

    async def _rebuild(self, name: str) -> _Loaded:
        run = self.run
        try:
            store = RunStore.open(run.runs_dir, run.run_id)
            db = connect_readonly(run.database)
        except (InputError, OSError):
            raise InputError(
                f"the Ray worker on {socket.gethostname()} cannot read run '{run.run_id}' in {run.runs_dir} (or its"
                f" database {run.database}): every Ray node must see the runs folder at the same path (a shared"
                " filesystem), or use --executor local"
            ) from None
        try:
            cache, log = BufferedCache(db), BufferedLog()
            # prepare's replayed calls are the driver's, logged when it prepared: their rows here are dropped
            calls = Calls(cache, run.run_id, run.read_cache, log=log, prepare_log=BufferedLog())
            task = recorded_task(store.manifest, WHY)
            rebuilt = await rebuild_arm(store, task, name, db, runs_dir=run.runs_dir, calls=calls, test_queries=True,
                                        why=WHY)
        except BaseException:
            db.close()
            raise
        return _Loaded(name, rebuilt, cache, log, db)
