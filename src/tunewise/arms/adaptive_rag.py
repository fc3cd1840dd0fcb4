"""`adaptive_rag`: retrieve only when this model needs it ("Model-Adaptive Tool Necessity Reveals the
Knowing-Doing Gap in LLM Tool Use", 2026).

`prepare` measures necessity on the train split: retrieval is necessary for a query when the model,
closed-book, answers it correctly in fewer than r of k samples (train targets may be read; test
targets never are). It fits a cheap gate on those labels, a threshold on the agreement of the first
g of the same samples, and asks the model "do you need to look this up?" for each train query, whose
answers against measured necessity are the knowing-doing gap. Those calls are the arm's one-off
`fixed_cost`.

At inference the gate's g closed-book samples are drawn (counted per query); a query the gate passes
is answered with their majority answer, any other as `rag` answers it. `gate: stated` uses the
model's stated need instead (one call per query, then a closed-book or a retrieval call).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from tunewise.arms.base import Answer
from tunewise.arms.necessity import Gate, confusion, fit_gate, is_necessary
from tunewise.arms.rag import RagArm, RagParams
from tunewise.arms.voting import majority, parse_yes_no, plurality_count
from tunewise.caller import Usage
from tunewise.errors import ModelCallError
from tunewise.prompt import Message, build_messages

if TYPE_CHECKING:
    from tunewise.caller import ExampleCaller
    from tunewise.data import Example
    from tunewise.models.base import ChatRequest
    from tunewise.task import Task

NEED_SYSTEM = "You decide whether a question needs looking up in documents. Reply with yes or no only."


def need_messages(question: str) -> list[Message]:
    return [
        {"role": "system", "content": NEED_SYSTEM},
        {"role": "user", "content": f"Question:\n{question}\n\nDo you need to look this up to answer it correctly? Answer yes or no."},
    ]


class AdaptiveRagParams(RagParams):
    needs_train = True

    arm: Literal["adaptive_rag"] = "adaptive_rag"  # type: ignore[assignment]
    necessity_k: int = Field(10, ge=1, le=64, description="closed-book samples per train query")
    necessity_r: int = Field(9, ge=1, le=64, description="retrieval is necessary below r correct of k")
    probes: int = Field(3, ge=1, le=64, description="closed-book samples the gate looks at per query")
    temperature: float = Field(0.7, gt=0, le=2, description="sampling temperature of the closed-book samples")
    gate: Literal["agreement", "stated"] = Field("agreement", description="what decides to retrieve")
    ask_need: bool = Field(True, description="ask 'do you need to look this up?' on train (the knowing-doing gap)")
    max_train: int | None = Field(200, ge=1, description="train queries necessity is measured on (the first ones)")
    baseline: str = Field("rag", description="the arm of the run whose prompt tokens the savings are measured against")

    @model_validator(mode="after")
    def _consistent(self) -> AdaptiveRagParams:
        if self.necessity_r > self.necessity_k:
            raise ValueError(f"necessity_r ({self.necessity_r}) cannot exceed necessity_k ({self.necessity_k})")
        if self.probes > self.necessity_k:
            raise ValueError(f"probes ({self.probes}) cannot exceed necessity_k ({self.necessity_k}): "
                             "the gate is fitted on the first probes of the train samples")
        return self

    def check(self, task: Task, index: int) -> None:
        """A `baseline` named on purpose must be an arm of the task (the default `rag` may be absent)."""
        if "baseline" in self.model_fields_set and self.baseline not in [a.label for a in task.arms]:
            raise task.error(f"arm '{self.label}': baseline '{self.baseline}' is not an arm of this task", "arms", index)


class AdaptiveRagArm(RagArm):
    params: AdaptiveRagParams
    gate: Gate | None = None
    _record: dict[str, Any] | None = None

    async def prepare(self) -> None:
        await super().prepare()
        task = self.context.task
        self.normalize = task.metric.normalizer(task.base_dir)
        self._record = await self._measure_necessity()

    @property
    def record(self) -> dict[str, Any]:
        return self._record or {}

    def closed_book(self, lm: ExampleCaller, example: Example) -> ChatRequest:
        """The closed-book sampling request: the same on train (k samples) and at inference (the first g)."""
        messages = build_messages(self.context.task.instructions, example.input)
        return lm.request(messages, temperature=self.params.temperature)

    async def stated_need(self, lm: ExampleCaller, example: Example) -> bool | None:
        return parse_yes_no(await lm.chat(need_messages(example.input), temperature=0.0))

    async def _measure_necessity(self) -> dict[str, Any]:
        caller = self.context.caller
        assert caller is not None, "the experiment gives arms the task's model for prepare-time calls"
        task, p = self.context.task, self.params
        metric = task.metric.build(task.base_dir)
        train = self.context.dataset.train[: p.max_train]
        limit = asyncio.Semaphore(max(task.model.max_concurrency, task.model.batch_size))
        usage = Usage()

        async def measure(example: Example) -> tuple[bool, int, bool | None] | None:
            lm = caller.for_example(self.name, f"train:{example.id}")
            async with limit:
                try:
                    texts = [s.text for s in await lm.complete(self.closed_book(lm, example), p.necessity_k)]
                    stated = await self.stated_need(lm, example) if p.ask_need or p.gate == "stated" else None
                except ModelCallError:
                    return None
                finally:
                    usage.absorb(lm.usage)
            correct = sum(float(metric(t, example.target)) >= 0.5 for t in texts)
            agreement = plurality_count([self.normalize(t) for t in texts[: p.probes]])
            return is_necessary(correct, p.necessity_k, p.necessity_r), agreement, stated

        measured = [m for m in await asyncio.gather(*(measure(e) for e in train)) if m is not None]
        necessary = [m[0] for m in measured]
        self.gate = fit_gate([m[1] for m in measured], necessary, p.probes)
        gate: dict[str, Any] = {"kind": "agreement", "probes": p.probes, "threshold": self.gate.threshold,
                                "train_accuracy": self.gate.train_accuracy}
        if p.gate == "stated":  # retrieve unless the model says it needs not
            hits = sum((m[2] is not False) == m[0] for m in measured)
            gate = {"kind": "stated", "train_accuracy": hits / len(measured) if measured else None}
        record: dict[str, Any] = {
            "fixed_cost": usage.cost,
            "prepare": {"calls": usage.calls, "cached_calls": usage.cached_calls, "tokens_in": usage.tokens_in,
                        "tokens_out": usage.tokens_out, "fresh_cost": usage.fresh_cost},
            "necessity": {
                "k": p.necessity_k, "r": p.necessity_r, "train_queries": len(measured),
                "train_errors": len(train) - len(measured),
                "necessary_rate": sum(necessary) / len(necessary) if necessary else None,
                "gate": gate,
            },
        }
        if p.ask_need or p.gate == "stated":
            record["necessity"]["stated"] = confusion([m[2] for m in measured], necessary)
        return record

    async def answer(self, example: Example, lm: ExampleCaller) -> Answer:
        if self.params.gate == "stated":
            stated = await self.stated_need(lm, example)
            decision: dict[str, Any] = {"stated": stated, "retrieve": stated is not False}
            closed: str | None = None
        else:
            assert self.gate is not None, "prepare() fits the gate"
            texts = [s.text for s in await lm.complete(self.closed_book(lm, example), self.params.probes)]
            keys = [self.normalize(t) for t in texts]
            agreement = plurality_count(keys)
            decision = {"agreement": agreement, "retrieve": self.gate.retrieve(agreement)}
            closed = texts[majority(keys)]
        if decision["retrieve"]:
            before = lm.usage.tokens_in
            answer = await super().answer(example, lm)
            decision["rag_tokens_in"] = lm.usage.tokens_in - before
            answer.meta["gate"] = decision
            return answer
        if closed is None:
            closed = await lm.chat(build_messages(self.context.task.instructions, example.input))
        return Answer(closed, {"gate": decision})
