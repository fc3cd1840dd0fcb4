"""The local executor: an arm's test examples answered in this process, `concurrency` at a time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tunewise.arms.base import Arm, Result
from tunewise.calls.caller import ModelCaller
from tunewise.data import Example
from tunewise.evaluation.manifest import now
from tunewise.evaluation.runner import evaluate_arm
from tunewise.metrics import Metric


class LocalExecutor:
    """The runner's loop, in this process."""

    def describe(self) -> dict[str, Any]:
        return {"executor": "local", "at": now()}

    async def evaluate_arm(self, arm: Arm, examples: Sequence[Example], *, caller: ModelCaller, metric: Metric,
                           concurrency: int, on_result: Callable[[Result], None],
                           stop: Callable[[], bool] | None = None) -> None:
        await evaluate_arm(arm, examples, caller=caller, metric=metric, concurrency=concurrency, on_result=on_result,
                           stop=stop)

    async def aclose(self) -> None:
        pass
