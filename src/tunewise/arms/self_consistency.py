"""`self_consistency`: k samples of the zero-shot prompt, the majority answer wins.

The k samples are drawn once (one request, each sample cached by its number) and maj@k is reported
for k = 1, 2, 4, ... k from that one pool, as lm-evaluation-harness does, along with best-of-k (is a
correct answer anywhere among the first k). Answers vote by the task metric's normalisation, so
"Paris." and "paris" are one answer under `normalized`; ties go to the answer drawn first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from tunewise.arms.base import Answer, AnswerMeta, Arm, ArmExtras, ArmParams, ArmRecord, Result
from tunewise.arms.pool import PoolExtras, pool_stats
from tunewise.arms.voting import k_schedule, majority_picks, plurality_count
from tunewise.metrics import build_normalizer
from tunewise.prompt import build_messages

if TYPE_CHECKING:
    from tunewise.calls.caller import ExampleCaller
    from tunewise.data import Query


class SelfConsistencyParams(ArmParams):
    arm: Literal["self_consistency"] = "self_consistency"
    k: int = Field(8, ge=1, le=128, description="samples per query (the largest k of the maj@k curve)")
    temperature: float = Field(
        0.7, gt=0, le=2, description="sampling temperature: votes need varied samples, whatever the task's is"
    )


class VoteMeta(AnswerMeta):
    agreement: float = Field(description="share of the samples that gave the winning answer")


class SelfConsistencyExtras(PoolExtras):
    agreement: float = Field(title="mean agreement")


class SelfConsistencyArm(Arm):
    Params = SelfConsistencyParams
    Meta = VoteMeta
    params: SelfConsistencyParams
    serves = frozenset({"max_tokens", "stop"})

    async def prepare(self) -> ArmRecord | None:
        self.normalize = build_normalizer(self.context.task.metric, self.context.task.base_dir)
        self.ks = k_schedule(self.params.k)
        return None

    async def answer(self, query: Query, lm: ExampleCaller) -> Answer:
        messages = build_messages(self.context.task.instructions, query.input, history=self.history(query))
        samples = await lm.complete(lm.request(messages, temperature=self.params.temperature), self.params.k)
        texts = [s.text for s in samples]
        keys = [self.normalize(t) for t in texts]
        picks = majority_picks(keys, self.ks)
        chosen = picks[f"maj@{self.params.k}"]
        return Answer(texts[chosen], VoteMeta(agreement=plurality_count(keys) / len(keys)), candidates=texts, picks=picks)

    @classmethod
    def summarize(cls, params: ArmParams, results: Sequence[Result], record: ArmRecord | None,
                  peers: Mapping[str, Sequence[Result]]) -> ArmExtras | None:
        stats = pool_stats(results)
        if stats is None:
            return None
        agreements = [m.agreement for m in cls.metas(results) if isinstance(m, VoteMeta)]
        return SelfConsistencyExtras(**stats, agreement=sum(agreements) / len(agreements) if agreements else 0.0)
