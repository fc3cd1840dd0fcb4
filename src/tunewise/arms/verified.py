"""`verify: grounded` on any arm: the arm answers as it does, and the grounded-continuation verifier checks, before
the answer is returned, that it does not rest on a premise the conversation has superseded or retracted.

The verified arm is the arm's own class with `answer` checked (`verified(cls)`), so its parameters, preparation,
records and statistics stay the arm's. Per conversation the verifier keeps a premise graph, extended by the turns
a conversation adds (labelled by the task's model, or by `python:module:function`); the passages the arm put in
front of the model are labelled too. An answer resting only on stale premises is re-asked with the live premises
as its context (`on_stale: reanswer`; declined if that answer is stale again), or declined (`abstain`), with the
reason stated.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import Field, create_model

from tunewise.arms.base import Answer, AnswerMeta, Arm, ArmExtras, ArmParams, ArmRecord, Result
from tunewise.calls.caller import Usage
from tunewise.prompt import ContextChunk, build_messages
from tunewise.user_code import import_function
from tunewise.verify.conversation import Conversation, Conversations, Premise, Verdict
from tunewise.verify.graph import Operation
from tunewise.verify.labels import Labeller, TurnLabel, model_labeller, python_labeller

if TYPE_CHECKING:
    from tunewise.calls.caller import ExampleCaller
    from pathlib import Path

    from tunewise.data import Query
    from tunewise.spec import Task
    from tunewise.spec.verify import VerifySpec

Action = Literal["kept", "reanswered", "abstained"]


class VerifyMeta(AnswerMeta):
    """What the verifier did with one answer."""

    action: Action = "kept"
    stale: bool = Field(False, description="the arm's own answer rested only on stale premises")
    reason: str = ""
    rests_on: list[str] = Field(default_factory=list, description="ids of the premises the returned answer states")
    labelled: int = Field(0, description="texts labelled for this answer (turns the conversation added, passages)")
    calls: int = Field(0, description="model calls the verifier made (labelling, re-asking)")
    tokens: int = Field(0, description="tokens of those calls, in and out")


class VerifyExtras(ArmExtras):
    section = "Verification"
    caption = ("Grounded-continuation verifier: answers that rested only on superseded or retracted premises, and "
               "what was done with them; the verifier's own model calls and tokens are in the arm's cost.")

    caught: int = Field(description="answers that rested on stale premises before the check")
    reanswered: int
    abstained: int
    verifier_calls: int
    verifier_tokens: int
    labelled_per_answer: float = Field(description="texts labelled per answer: what turns added, not the transcript")


def labeller_for(spec: VerifySpec, base_dir: Path | None) -> Labeller:
    """The labeller `spec` names: the task's model, or the user's function."""
    if spec.labeller == "model":
        return model_labeller
    return python_labeller(import_function(spec.labeller, base_dir, role="labeller"))


class _Verifier:
    """The verifier state an arm instance holds: conversations by prefix, and the labeller."""

    def __init__(self, spec: VerifySpec, labeller: Labeller):
        self.spec = spec
        self.label = labeller
        self.conversations = Conversations()

    async def check(self, arm: Arm, query: Query, answer: Answer, lm: ExampleCaller) -> Answer:
        before = _snapshot(lm.usage)
        state, new_turns, digests = self.conversations.take(query.history)
        try:
            for turn in new_turns:
                state.apply(await self.label(turn["content"], turn["role"], lm), turn["content"])
        finally:
            self.conversations.keep(digests[state.turns], state)
        keys = [lab.key for lab in await self.label(query.input, "user", lm) if lab.op is Operation.QUERY]
        passages = [r.text for r in answer.retrieved or []]
        premises = await self._premises(state, keys, passages, lm)
        labelled = len(new_turns) + 1 + len(passages)
        verdict = state.check(answer.text, premises, self.spec.min_overlap)
        final, action, rests_on = answer, "kept", verdict
        if verdict.stale and self.spec.on_stale == "reanswer":
            final, rests_on = await self._reanswer(arm, query, premises, passages, state, lm)
            action = "reanswered" if not rests_on.stale else "abstained"
        elif verdict.stale:
            action = "abstained"
        if action == "abstained":
            final = Answer(f"I can't answer that from what still holds: {verdict.reason}.", answer.meta,
                           retrieved=answer.retrieved, abstained=verdict.reason)
        spent = _spent(before, lm.usage)
        meta = VerifyMeta(action=action, stale=verdict.stale, reason=verdict.reason if verdict.stale else rests_on.reason,
                          rests_on=[p.id for p in rests_on.rests_on], labelled=labelled, calls=spent[0], tokens=spent[1])
        final.meta = _with_verify(type(arm), answer.meta, meta)
        return final

    async def _premises(self, state: Conversation, keys: list[str], passages: Sequence[str],
                        lm: ExampleCaller) -> list[Premise]:
        """The conversation's premises on the question's keys (all of them when it names none), and the facts
        the retrieved passages state."""
        found = [p for key in keys for p in state.premises(key)] if keys else state.premises()
        for i, text in enumerate(passages, start=1):
            for label in await self.label(text, "document", lm):
                if label.op in (Operation.ASSERT, Operation.REVISE) and label.value:
                    found.append(state.passage_premise(f"passage {i}", label, text))
        return found

    async def _reanswer(self, arm: Arm, query: Query, premises: Sequence[Premise], passages: Sequence[str],
                        state: Conversation, lm: ExampleCaller) -> tuple[Answer, Verdict]:
        """The question asked again with only the live premises in front of the model: the conversation's, and
        the passages none of whose facts is stale."""
        stale_passages = {p.id for p in premises if p.id.startswith("passage ") and not p.live}
        context = [ContextChunk(p.text, "conversation") for p in premises if p.live and not p.id.startswith("passage ")]
        context += [ContextChunk(text, f"passage {i}") for i, text in enumerate(passages, start=1)
                    if f"passage {i}" not in stale_passages]
        messages = build_messages(arm.context.task.instructions, query.input, context=context)
        answer = Answer(await lm.chat(messages))
        return answer, state.check(answer.text, premises, self.spec.min_overlap)


def _snapshot(usage: Usage) -> tuple[int, int]:
    return usage.calls, usage.tokens_in + usage.tokens_out


def _spent(before: tuple[int, int], usage: Usage) -> tuple[int, int]:
    calls, tokens = _snapshot(usage)
    return calls - before[0], tokens - before[1]


def _with_verify(cls: type[Arm], meta: AnswerMeta | None, verify: VerifyMeta) -> AnswerMeta:
    return cls.Meta(**(dict(meta) if meta is not None else {}), verify=verify)


@functools.cache
def verified(cls: type[Arm]) -> type[Arm]:
    """`cls` with every answer checked by the verifier its params' `verify:` configures."""
    meta = create_model(f"Verified{cls.Meta.__name__}", __base__=cls.Meta, verify=(VerifyMeta | None, None))

    class Verified(cls):  # type: ignore[valid-type, misc]
        Meta = meta

        @classmethod
        def check(klass, params: ArmParams, task: Task, index: int) -> None:
            """The arm's own checks, and a `python:` labeller must import."""
            super().check(params, task, index)
            try:
                labeller_for(params.verify, task.base_dir)
            except ValueError as e:
                raise task.error(f"arm '{params.label}': verify.labeller: {e}", "arms", index, "verify") from None

        async def prepare(self) -> ArmRecord | None:
            spec = self.params.verify
            self._verifier = _Verifier(spec, labeller_for(spec, self.context.task.base_dir))
            return await super().prepare()

        async def answer(self, query: Query, lm: ExampleCaller) -> Answer:
            return await self._verifier.check(self, query, await super().answer(query, lm), lm)

        @classmethod
        def summarize(klass, params: ArmParams, results: Sequence[Result], record: ArmRecord | None,
                      peers: Mapping[str, Sequence[Result]]) -> ArmExtras | None:
            own = cls.summarize(params, results, record, peers)
            checks = [m.verify for m in klass.metas(results) if m is not None and m.verify is not None]
            extras = verify_extras(checks)
            if own is None or extras is None:
                return own or extras
            merged = create_model(f"Verified{type(own).__name__}", __base__=(type(own), VerifyExtras))
            return merged(**dict(own), **dict(extras))

    Verified.__name__ = Verified.__qualname__ = f"Verified{cls.__name__}"
    return Verified


def verify_extras(checks: Sequence[VerifyMeta]) -> VerifyExtras | None:
    """The verifier's statistics over an arm's answers; None when it checked none."""
    if not checks:
        return None
    return VerifyExtras(
        caught=sum(c.stale for c in checks), reanswered=sum(c.action == "reanswered" for c in checks),
        abstained=sum(c.action == "abstained" for c in checks), verifier_calls=sum(c.calls for c in checks),
        verifier_tokens=sum(c.tokens for c in checks),
        labelled_per_answer=round(sum(c.labelled for c in checks) / len(checks), 3),
    )


__all__ = ["TurnLabel", "VerifyExtras", "VerifyMeta", "verified", "verify_extras"]
