"""`few_shot`: k demonstrations from the train split, chosen at random (seeded), by similarity, or bootstrapped
from the ones the model itself gets right (see tunewise.arms.demos)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from tunewise.arms.base import Answer, AnswerMeta, Arm, ArmExtras, ArmParams, ArmRecord, Result
from tunewise.arms.demos import BootstrapRecord, DemoSelector, DemoSettings, Shot
from tunewise.data import Example, Query
from tunewise.prompt import build_messages

if TYPE_CHECKING:
    from tunewise.calls.caller import ExampleCaller


class FewShotParams(ArmParams, DemoSettings):
    needs_train = True
    demos_field = "k"

    arm: Literal["few_shot"] = "few_shot"
    k: int = Field(4, ge=1, le=64, description="demonstrations per prompt")


class DemoMeta(AnswerMeta):
    demos: list[str] = Field(default_factory=list, description="ids of the train examples shown")


class BootstrapExtras(ArmExtras):
    """How many train examples the bootstrap tried and kept as demonstrations."""

    section = "Demonstrations"
    caption = ("bootstrap: train examples answered under the arm's own prompt; the ones the model got right became "
               "its demonstrations, with its own answers.")

    selector: str = Field("bootstrap", title="selector")
    tried: int = Field(title="train tried")
    kept: int = Field(title="kept")
    kept_rate: float = Field(title="kept rate")
    demos_per_prompt: float = Field(title="demos per prompt")


def bootstrap_extras(record: ArmRecord | None, shown: Sequence[int]) -> BootstrapExtras | None:
    """The bootstrap's statistics when the arm bootstrapped (its record says so); `shown`: demonstrations per
    answered query."""
    if not isinstance(record, BootstrapRecord):
        return None
    return BootstrapExtras(tried=record.tried, kept=len(record.kept),
                           kept_rate=len(record.kept) / record.tried if record.tried else 0.0,
                           demos_per_prompt=sum(shown) / len(shown) if shown else 0.0)


class FewShotArm(Arm):
    Params = FewShotParams
    Meta = DemoMeta
    Record = BootstrapRecord
    params: FewShotParams
    serves = frozenset({"n", "temperature", "max_tokens", "stop"})

    async def prepare(self) -> ArmRecord | None:
        self.demos = DemoSelector(self.context, k=self.params.k, settings=self.params)
        return await self.demos.prepare(self.name, self.attempt)

    async def attempt(self, example: Example, lm: ExampleCaller) -> Answer:
        """A train example answered under this arm's prompt, shown random demonstrations from the rest of train."""
        return await self.ask(example.query, self.demos.random_shots(example), lm)

    async def ask(self, query: Query, shots: list[Shot], lm: ExampleCaller) -> Answer:
        messages = build_messages(self.context.task.instructions, query.input, [s.demo for s in shots],
                                  history=self.history(query))
        return Answer(await lm.chat(messages), DemoMeta(demos=[s.id for s in shots]))

    async def answer(self, query: Query, lm: ExampleCaller) -> Answer:
        return await self.ask(query, await self.demos.select(query), lm)

    @classmethod
    def summarize(cls, params: ArmParams, results: Sequence[Result], record: ArmRecord | None,
                  peers: Mapping[str, Sequence[Result]]) -> ArmExtras | None:
        return bootstrap_extras(record, [len(m.demos) for m in cls.metas(results) if isinstance(m, DemoMeta)])
