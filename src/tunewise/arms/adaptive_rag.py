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

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, model_validator

from tunewise.arms.base import Answer, AnswerMeta, ArmExtras, ArmParams, ArmRecord, Result
from tunewise.arms.necessity import Gate, confusion, fit_gate, is_necessary
from tunewise.arms.rag import RagArm, RagMeta, RagParams
from tunewise.arms.voting import majority, parse_yes_no, plurality_count
from tunewise.data import Example, Query
from tunewise.metrics import build_normalizer
from tunewise.prompt import Message, build_messages

if TYPE_CHECKING:
    from tunewise.calls.caller import ExampleCaller
    from tunewise.models.base import ChatRequest
    from tunewise.spec import Task

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


class GateDecision(BaseModel):
    """What the gate decided for one query, and on what."""

    retrieve: bool
    agreement: int | None = Field(None, description="probes sharing the most common answer (gate: agreement)")
    stated: bool | None = Field(None, description="the model's answer to 'do you need to look this up?' (gate: stated)")
    rag_tokens_in: int | None = Field(None, description="prompt tokens of the retrieval call, when made")


class AdaptiveMeta(RagMeta):
    gate: GateDecision


class NecessityProbe(AnswerMeta):
    """A train query's closed-book samples were scored by the evaluator; these are what the arm adds."""

    agreement: int
    stated: bool | None = None


class FittedGate(BaseModel):
    kind: Literal["agreement", "stated"]
    probes: int | None = None
    threshold: int | None = None
    train_accuracy: float | None = None

    @property
    def rule(self) -> str:
        """The fitted gate in words."""
        if self.kind != "agreement" or self.threshold is None or self.probes is None:
            return "retrieve unless the model says it need not"
        if self.threshold > self.probes:
            return "always retrieve"
        if self.threshold <= 1:
            return "never retrieve"
        return f"retrieve when fewer than {self.threshold} of {self.probes} closed-book samples agree"


class StatedNeed(BaseModel):
    """The model's stated need against measured necessity (the knowing-doing gap): rows are measured necessity,
    columns the stated need; unclear answers are counted apart and left out of the mismatch rate."""

    confusion: dict[str, dict[str, int]]
    unparsed: int
    mismatch_rate: float | None


class Necessity(BaseModel):
    """Necessity as measured on train: retrieval is necessary below r correct of k closed-book samples."""

    k: int
    r: int
    train_queries: int
    train_errors: int
    necessary_rate: float | None
    gate: FittedGate
    stated: StatedNeed | None = None


class NecessityRecord(ArmRecord):
    necessity: Necessity


class AdaptiveExtras(ArmExtras):
    """How often the gate retrieved, what that saved against always retrieving, and necessity on train."""

    section = "Adaptive retrieval"
    caption = ("Prompt tokens saved are against the run's baseline arm when it has one, else an estimate from the arm's "
               "own retrieval prompts; retrieval metrics of the arm cover the queries it retrieved for.")

    retrieval_rate: float | None = Field(title="retrieval rate")
    tokens_saved_pct: float | None = Field(title="prompt tokens saved %")
    tokens_saved_vs: str | None = Field(title="against")
    score_vs_baseline: float | None = Field(None, title="score − baseline")
    necessary_rate: float | None = Field(title="necessary on train")
    gate_rule: str = Field(title="gate")
    gate_train_accuracy: float | None = Field(title="gate train accuracy")
    necessity: Necessity

    def notes(self, arm: str) -> list[str]:
        stated = self.necessity.stated
        if stated is None:
            return []
        c = stated.confusion
        return [
            f"Knowing-doing gap of {arm} on {self.necessity.train_queries} train queries, the model's stated need "
            f"against measured necessity: necessary — said yes {c['necessary']['stated_yes']}, said no "
            f"{c['necessary']['stated_no']}; not necessary — said yes {c['not_necessary']['stated_yes']}, said no "
            f"{c['not_necessary']['stated_no']}; no clear answer {stated.unparsed}; mismatch rate "
            + ("—" if stated.mismatch_rate is None else f"{stated.mismatch_rate:.3f}") + "."
        ]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


class AdaptiveRagArm(RagArm):
    Params = AdaptiveRagParams
    Meta = AdaptiveMeta
    Record = NecessityRecord
    params: AdaptiveRagParams
    serves = frozenset({"max_tokens", "stop"})
    gate: Gate | None = None

    @classmethod
    def check(cls, params: ArmParams, task: Task, index: int) -> None:
        """A `baseline` named on purpose must be an arm of the task (the default `rag` may be absent)."""
        assert isinstance(params, AdaptiveRagParams)
        if "baseline" in params.model_fields_set and params.baseline not in [a.label for a in task.arms]:
            raise task.error(f"arm '{params.label}': baseline '{params.baseline}' is not an arm of this task", "arms", index)

    async def prepare(self) -> ArmRecord | None:
        await super().prepare()
        task = self.context.task
        self.normalize = build_normalizer(task.metric, task.base_dir)
        return await self._measure_necessity()

    def closed_book(self, lm: ExampleCaller, query: Query) -> ChatRequest:
        """The closed-book sampling request: the same on train (k samples) and at inference (the first g)."""
        messages = build_messages(self.context.task.instructions, query.input, history=self.history(query))
        return lm.request(messages, temperature=self.params.temperature)

    async def stated_need(self, lm: ExampleCaller, query: Query) -> bool | None:
        return parse_yes_no(await lm.chat(need_messages(query.input), temperature=0.0))

    async def probe(self, example: Example, lm: ExampleCaller) -> Answer:
        """A train query closed-book: k samples (the evaluator scores each) and, when asked for, the stated need."""
        p = self.params
        texts = [s.text for s in await lm.complete(self.closed_book(lm, example.query), p.necessity_k)]
        stated = await self.stated_need(lm, example.query) if p.ask_need or p.gate == "stated" else None
        agreement = plurality_count([self.normalize(t) for t in texts[: p.probes]])
        return Answer(texts[0], NecessityProbe(agreement=agreement, stated=stated), candidates=texts)

    async def _measure_necessity(self) -> NecessityRecord:
        assert self.context.evaluate is not None, "the experiment gives arms the prepare-time evaluator"
        p = self.params
        train = list(self.context.train[: p.max_train])
        evaluated = await self.context.evaluate(self.name, train, self.probe, label="necessity")
        measured = [(r, NecessityProbe.model_validate(r.meta)) for r in evaluated.results if r.error is None and r.pool]
        necessary = [is_necessary(sum(s >= 0.5 for s in r.pool.scores), p.necessity_k, p.necessity_r)  # type: ignore[union-attr]
                     for r, _ in measured]
        self.gate = fit_gate([m.agreement for _, m in measured], necessary, p.probes)
        gate = FittedGate(kind="agreement", probes=p.probes, threshold=self.gate.threshold,
                          train_accuracy=self.gate.train_accuracy)
        if p.gate == "stated":  # retrieve unless the model says it needs not
            hits = sum((m.stated is not False) == n for (_, m), n in zip(measured, necessary))
            gate = FittedGate(kind="stated", train_accuracy=hits / len(measured) if measured else None)
        stated = None
        if p.ask_need or p.gate == "stated":
            stated = StatedNeed.model_validate(confusion([m.stated for _, m in measured], necessary))
        usage = evaluated.usage
        return NecessityRecord(fixed_cost=usage.cost, usage=usage, necessity=Necessity(
            k=p.necessity_k, r=p.necessity_r, train_queries=len(measured), train_errors=len(train) - len(measured),
            necessary_rate=sum(necessary) / len(necessary) if necessary else None, gate=gate, stated=stated,
        ))

    async def answer(self, query: Query, lm: ExampleCaller) -> Answer:
        closed: str | None = None
        if self.params.gate == "stated":
            stated = await self.stated_need(lm, query)
            decision = GateDecision(stated=stated, retrieve=stated is not False)
        else:
            assert self.gate is not None, "prepare() fits the gate"
            texts = [s.text for s in await lm.complete(self.closed_book(lm, query), self.params.probes)]
            keys = [self.normalize(t) for t in texts]
            agreement = plurality_count(keys)
            decision = GateDecision(agreement=agreement, retrieve=self.gate.retrieve(agreement))
            closed = texts[majority(keys)]
        if decision.retrieve:
            before = lm.usage.tokens_in
            answer = await super().answer(query, lm)
            decision.rag_tokens_in = lm.usage.tokens_in - before
            assert isinstance(answer.meta, RagMeta)
            answer.meta = AdaptiveMeta(**dict(answer.meta), gate=decision)
            return answer
        if closed is None:
            messages = build_messages(self.context.task.instructions, query.input, history=self.history(query))
            closed = await lm.chat(messages)
        return Answer(closed, AdaptiveMeta(gate=decision))

    @classmethod
    def summarize(cls, params: ArmParams, results: Sequence[Result], record: ArmRecord | None,
                  peers: Mapping[str, Sequence[Result]]) -> ArmExtras | None:
        """Retrieval rate and prompt tokens saved: against the run's `baseline` arm when it has results, else
        estimated from the retrieval prompts this arm sent."""
        assert isinstance(params, AdaptiveRagParams)
        if not isinstance(record, NecessityRecord):
            return None
        gates = [m.gate for m in cls.metas(results) if isinstance(m, AdaptiveMeta)]
        rate = saved = versus = against = None
        if gates:
            rate = _mean([float(g.retrieve) for g in gates])
            rag_prompts = [g.rag_tokens_in for g in gates if g.rag_tokens_in is not None]
            if rag_prompts and _mean(rag_prompts) > 0:
                saved, versus = 100 * (1 - _mean([r.tokens_in for r in results]) / _mean(rag_prompts)), "estimate"
        base = peers.get(params.baseline) or []
        base_tokens = _mean([r.tokens_in for r in base])
        if rate is not None and base and base_tokens > 0:
            saved, versus = 100 * (1 - _mean([r.tokens_in for r in results]) / base_tokens), params.baseline
            against = _mean([r.score for r in results]) - _mean([r.score for r in base])
        n = record.necessity
        return AdaptiveExtras(retrieval_rate=rate, tokens_saved_pct=saved, tokens_saved_vs=versus,
                              score_vs_baseline=against, necessary_rate=n.necessary_rate, gate_rule=n.gate.rule,
                              gate_train_accuracy=n.gate.train_accuracy, necessity=n)
