"""`zero_shot`: the instructions and the input, nothing else."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from tunewise.arms.base import Answer, Arm, ArmParams
from tunewise.prompt import build_messages

if TYPE_CHECKING:
    from tunewise.calls.caller import ExampleCaller
    from tunewise.data import Query


class ZeroShotParams(ArmParams):
    arm: Literal["zero_shot"] = "zero_shot"


class ZeroShotArm(Arm):
    Params = ZeroShotParams
    serves = frozenset({"n", "temperature", "max_tokens", "stop"})

    async def answer(self, query: Query, lm: ExampleCaller) -> Answer:
        messages = build_messages(self.context.task.instructions, query.input, history=self.history(query))
        return Answer(await lm.chat(messages))
