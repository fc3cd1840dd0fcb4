"""`few_shot`: k demonstrations from the train split, chosen at random (seeded) or by similarity."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from tunewise.arms.base import Answer, Arm, ArmParams
from tunewise.arms.demos import DemoSelector, Selector
from tunewise.prompt import Demo, build_messages

if TYPE_CHECKING:
    from tunewise.caller import ExampleCaller
    from tunewise.data import Example


class FewShotParams(ArmParams):
    needs_train = True

    arm: Literal["few_shot"] = "few_shot"
    k: int = Field(4, ge=1, le=64, description="demonstrations per prompt")
    selector: Selector = "random"


class FewShotArm(Arm):
    params: FewShotParams

    async def prepare(self) -> None:
        self.demos = DemoSelector(self.context, k=self.params.k, selector=self.params.selector)

    async def answer(self, example: Example, lm: ExampleCaller) -> Answer:
        demos = self.demos.select(example)
        messages = build_messages(
            self.context.task.instructions, example.input, [Demo(d.input, d.target) for d in demos]
        )
        return Answer(await lm.chat(messages), {"demos": [d.id for d in demos]})
