"""The ray executor: an arm's test examples fanned out over Ray actors, the results streamed back to this process.

Each actor (an `ArmWorker`) rebuilds the prepared arm from the run once, with its own model client or local model,
and answers the queries it is sent, `concurrency` at a time. As each answer comes back (`ray.wait`), the driver
writes the responses its worker fetched to the cache, then its calls to the call log, scores it (workers never see a
target) and appends the Result: an interrupted run has recorded everything finished, and a resumed one, on either
executor, sends only what is missing. A worker that dies is restarted by Ray and the queries it had in flight are
sent again (nothing of theirs was recorded); one that dies more than `RESTARTS` times stops the run, resumable.

Workers read the run folder and its database at the same paths as the driver: one machine, or a filesystem every
node mounts at the same path. This is the only module that imports `ray`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from tunewise.arms.base import Arm, Result
from tunewise.calls.buffer import WriteBack
from tunewise.calls.caller import ModelCaller
from tunewise.data import Example
from tunewise.errors import InputError, ModelCallError, one_line
from tunewise.evaluation.executors import NEEDS_RAY
from tunewise.evaluation.executors.worker import ArmWorker, Refused, Reply, Stopped, WorkerRun
from tunewise.evaluation.manifest import now
from tunewise.evaluation.runner import scored
from tunewise.metrics import Metric
from tunewise.spec import ExecutorSpec

RESTARTS = 3  # times Ray restarts a worker that died, and re-sends its queries, before the run stops
WAIT_S = 1.0  # longest wait for an answer before looking again (an interrupt is seen within it)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError(NEEDS_RAY) from None
    return ray


class RayExecutor:
    """A pool of Ray actors answering one run's queries, an arm at a time."""

    def __init__(self, ray: Any, actors: list[Any], *, address: str | None, started: bool):
        self._ray = ray
        self.actors = actors
        self.address = address
        self._started = started

    @classmethod
    async def start(cls, spec: ExecutorSpec, run: WorkerRun) -> RayExecutor:
        """Connect to the cluster at `spec.address` (None: start a local Ray with this machine's CPUs, unless this
        process is connected already) and start `spec.workers` actors (None: one per CPU of the cluster)."""
        ray = _import_ray()
        started = not ray.is_initialized()
        if started:
            try:
                await asyncio.to_thread(
                    ray.init, address=spec.address, num_cpus=os.cpu_count() if spec.address is None else None,
                    include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                )
            except ConnectionError as e:
                raise ModelCallError(f"cannot connect to the Ray cluster at {spec.address}: {one_line(str(e))}",
                                     stops_run=True) from None
        try:
            cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
            n = spec.workers or cpus
            worker = ray.remote(ArmWorker)
            tag = uuid.uuid4().hex[:8]
            actors = [
                worker.options(
                    name=f"tunewise:{run.run_id}:{tag}:{i}", num_cpus=min(1.0, cpus / n), max_restarts=RESTARTS,
                    max_task_retries=RESTARTS, scheduling_strategy="SPREAD",
                ).remote(run)
                for i in range(n)
            ]
        except BaseException:
            if started:
                ray.shutdown()
            raise
        return cls(ray, actors, address=spec.address, started=started)

    def describe(self) -> dict[str, Any]:
        return {"executor": "ray", "address": self.address, "workers": len(self.actors), "at": now()}

    async def evaluate_arm(self, arm: Arm, examples: Sequence[Example], *, caller: ModelCaller, metric: Metric,
                           concurrency: int, on_result: Callable[[Result], None],
                           stop: Callable[[], bool] | None = None) -> None:
        """Send each worker up to `concurrency` queries at a time; record each answer as it comes back; once `stop()`
        is true send no more, and record those in flight."""
        ray = self._ray
        write_back = WriteBack(caller.cache, caller.log)
        todo = deque(examples)
        running: dict[Any, tuple[int, Example]] = {}
        load = [0] * len(self.actors)
        try:
            while todo or running:
                if stop is not None and stop():
                    todo.clear()
                    if not running:
                        break
                for i, actor in enumerate(self.actors):
                    while todo and load[i] < concurrency:
                        example = todo.popleft()
                        running[actor.answer.remote(arm.name, example.query)] = (i, example)
                        load[i] += 1
                ready = await asyncio.to_thread(self._ready, list(running))
                stop: BaseException | None = None
                for ref in ready:  # all of them recorded before a stop is raised: they are paid for
                    i, example = running.pop(ref)
                    load[i] -= 1
                    reply = self._reply(ref, arm.name)
                    if isinstance(reply, Refused):
                        stop = stop or InputError(reply.message)
                        continue
                    if reply.writes is not None:
                        write_back.write(reply.writes)
                    if isinstance(reply, Stopped):
                        stop = stop or ModelCallError(reply.message, status=reply.status, stops_run=True)
                        continue
                    done = reply.answered
                    on_result(scored(arm.name, example, done.answer, done.error, metric, done.usage))
                if stop is not None:
                    raise stop
        finally:
            for ref in running:
                ray.cancel(ref)

    def _ready(self, refs: list[Any]) -> list[Any]:
        """The answers ready now, waiting up to WAIT_S for the first."""
        ready, rest = self._ray.wait(refs, num_returns=1, timeout=WAIT_S)
        if ready and rest:
            more, _ = self._ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        return ready

    def _reply(self, ref: Any, arm: str) -> Reply | Stopped | Refused:
        from ray.exceptions import RayActorError

        try:
            reply: Reply | Stopped | Refused = self._ray.get(ref)
        except RayActorError as e:
            said = one_line(str(e).strip().splitlines()[0]) if str(e).strip() else type(e).__name__
            return Stopped(f"arm '{arm}': a Ray worker died and could not be restarted ({said})", None, None)
        return reply

    async def aclose(self) -> None:
        """Stop the workers, and the Ray this process started (not a cluster it connected to)."""
        for actor in self.actors:
            self._ray.kill(actor)
        if self._started:
            self._ray.shutdown()
