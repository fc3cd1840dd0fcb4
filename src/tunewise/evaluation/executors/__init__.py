"""Where an arm's test examples are answered: in this process, or fanned out over a Ray cluster.

    local   LocalExecutor: the runner's loop, here (the default)
    ray     RayExecutor: Ray actors that each rebuild the prepared arm and answer queries; results stream back
            to this process (the driver), which alone scores them and writes the run store, cache and call log
    worker  the Ray actor's class (plain Python: `ray` is imported only by `ray.py`)

Either way an arm is prepared here first, and the results are the same, so a run resumes on either.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from tunewise.errors import InputError

if TYPE_CHECKING:
    from tunewise.arms.base import Arm, Result
    from tunewise.calls.caller import ModelCaller
    from tunewise.data import Example
    from tunewise.evaluation.executors.worker import WorkerRun
    from tunewise.metrics import Metric
    from tunewise.spec import ExecutorSpec

NEEDS_RAY = "the ray executor needs Ray: pip install 'tunewise[ray]'"


class Executor(Protocol):
    """Answers an arm's test examples and hands each scored Result to `on_result` as it finishes; once `stop()` is
    true it starts no more of them (those in flight are answered and handed on)."""

    def describe(self) -> dict[str, Any]:
        """What answered, for the manifest."""
        ...

    async def evaluate_arm(self, arm: Arm, examples: Sequence[Example], *, caller: ModelCaller, metric: Metric,
                           concurrency: int, on_result: Callable[[Result], None],
                           stop: Callable[[], bool] | None = None) -> None: ...

    async def aclose(self) -> None: ...


def check_executor(spec: ExecutorSpec) -> None:
    """InputError, before anything starts, when the executor asked for cannot be had (Ray not installed)."""
    if spec.kind == "ray" and importlib.util.find_spec("ray") is None:
        raise InputError(NEEDS_RAY)


async def open_executor(spec: ExecutorSpec, run: WorkerRun) -> Executor:
    """The executor `spec` asks for, started (a Ray cluster connected to, or started here), for run `run`."""
    if spec.kind == "local":
        from tunewise.evaluation.executors.local import LocalExecutor

        return LocalExecutor()
    from tunewise.evaluation.executors.ray import RayExecutor

    return await RayExecutor.start(spec, run)
