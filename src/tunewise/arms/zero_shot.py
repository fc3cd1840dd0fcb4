"""`zero_shot`: the instructions and the input, nothing else."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from tunewise.arms.base import Answer, Arm, ArmParams
from tunewise.prompt import build_messages

if TYPE_CHECKING:
    from tunewise.caller import ExampleCaller
    from tunewise.data import Example


class ZeroShotParams(ArmParams):
    arm: Literal["zero_shot"] = "zero_shot"


class ZeroShotArm(Arm):
    async def answer(self, example: Example, lm: ExampleCaller) -> Answer:
        return Answer(await lm.chat(build_messages(self.context.task.instructions, example.input)))
