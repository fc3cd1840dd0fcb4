"""`committee`: verifier-backed selection from k proposals ("Agentic Systems as Boosting Weak
Reasoning Models", 2026).

1. Propose: k samples of the zero-shot prompt (one request, each sample cached by its number).
   Proposals the task metric treats as the same answer are judged once, as their first occurrence.
2. Criticise: the task's local soundness check (`check:`) when it names one, else m yes/no judge
   calls per proposal ("Is this answer correct?"); one "no" drops it. If every proposal is dropped,
   the first proposal is kept (meta `all_vetoed`).
3. Compare: every pair of survivors, r votes asked in both orders ("Which answer is better, A or B?"),
   so a judge that favours a position cancels out; the Copeland winner (pairs won minus pairs lost)
   is the answer, a tie going to the earliest proposal.

Judges are the task's model, through the same `lm`, so every call is counted in the arm's cost.
The runner scores all proposals: coverage (a correct one among the k), the first proposal's score
and the selected one's give recovery = (selected - single) / (coverage - single).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import ConfigDict, Field, model_validator

from tunewise.arms.base import Answer, AnswerMeta, Arm, ArmExtras, ArmParams, ArmRecord, Result
from tunewise.arms.checks import build_check
from tunewise.arms.pool import PoolExtras, pool_stats
from tunewise.arms.voting import (
    Choice,
    copeland,
    copeland_winner,
    distinct,
    majority,
    pair_preference,
    parse_choice,
    parse_yes_no,
)
from tunewise.metrics import build_normalizer
from tunewise.prompt import Message, build_messages
from tunewise.spec import CheckSpec

if TYPE_CHECKING:
    from tunewise.calls.caller import ExampleCaller
    from tunewise.data import Query
    from tunewise.spec import Task

CRITIC_SYSTEM = "You check answers. Reply with yes or no only."
COMPARATOR_SYSTEM = "You compare two answers. Reply with A or B only."


class CommitteeParams(ArmParams):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    arm: Literal["committee"] = "committee"
    k: int = Field(5, ge=1, le=32, description="proposals per query")
    temperature: float = Field(0.7, gt=0, le=2, description="sampling temperature of the proposals")
    critics: int = Field(1, ge=0, le=16, description="yes/no judge calls per proposal (0: none); unused with `check`")
    votes: int = Field(1, ge=0, le=16, description="comparator votes per pair and order (0: no comparisons)")
    judge_temperature: float = Field(0.0, ge=0, le=2, description="> 0 when critics or votes > 1, so they differ")
    judge_max_tokens: int = Field(16, ge=1, le=256)
    # `check:` in the task file; named apart from ArmParams.check, the method that vets the arm.
    soundness: CheckSpec | None = Field(None, alias="check", description="a local soundness check, instead of LLM critics")

    @model_validator(mode="after")
    def _independent_judges(self) -> CommitteeParams:
        if max(self.critics, self.votes) > 1 and self.judge_temperature == 0:
            raise ValueError("critics or votes > 1 are independent judgments only with judge_temperature > 0")
        return self



class CommitteeMeta(AnswerMeta):
    distinct: int = Field(description="proposals that differ under the metric's normalisation")
    critic: Literal["check", "llm"] | None = Field(description="what vetted the proposals")
    vetoed: list[int] = Field(default_factory=list, description="indices of the proposals a critic rejected")
    all_vetoed: bool = False
    copeland: dict[str, int] | None = Field(None, description="Copeland score by proposal index")


class CommitteeExtras(PoolExtras):
    distinct: float = Field(title="distinct proposals")
    vetoed: float = Field(title="vetoed per query")
    all_vetoed: int = Field(title="all vetoed")


def survivors(candidates: list[int], verdicts: dict[int, list[bool | None]]) -> list[int]:
    """The candidates no critic rejected: one "no" (False) drops a candidate; unclear verdicts do not."""
    return [i for i in candidates if False not in verdicts.get(i, [])]


class CommitteeArm(Arm):
    Params = CommitteeParams
    Meta = CommitteeMeta
    params: CommitteeParams
    serves = frozenset({"max_tokens", "stop"})

    @classmethod
    def check(cls, params: ArmParams, task: Task, index: int) -> None:
        """A `python:` check must import, from next to the task file or installed."""
        assert isinstance(params, CommitteeParams)
        if params.soundness is not None and params.soundness.python is not None:
            try:
                build_check(params.soundness, task.base_dir)
            except ValueError as e:
                raise task.error(f"arm '{params.label}': check: {e}", "arms", index, "check") from None

    async def prepare(self) -> ArmRecord | None:
        task = self.context.task
        self.normalize = build_normalizer(task.metric, task.base_dir)
        self.sound = build_check(self.params.soundness, task.base_dir) if self.params.soundness else None
        return None

    async def answer(self, query: Query, lm: ExampleCaller) -> Answer:
        p = self.params
        prompt = build_messages(self.context.task.instructions, query.input, history=self.history(query))
        proposals = [s.text for s in await lm.complete(lm.request(prompt, temperature=p.temperature), p.k)]
        keys = [self.normalize(t) for t in proposals]
        unique = distinct(keys)
        verdicts = await self._criticise(query, lm, proposals, unique)
        alive = survivors(unique, verdicts)
        meta = CommitteeMeta(distinct=len(unique), critic="check" if self.sound else ("llm" if p.critics else None),
                             vetoed=[i for i in unique if i not in alive])
        if not alive:
            alive, meta.all_vetoed = [0], True
        winner = alive[0]
        if p.votes and len(alive) > 1:
            scores = copeland(len(alive), await self._compare(query, lm, proposals, alive))
            winner = alive[copeland_winner(scores)]
            meta.copeland = dict(zip(map(str, alive), scores))
        picks = {"first": 0, f"maj@{p.k}": majority(keys), "committee": winner}
        return Answer(proposals[winner], meta, candidates=proposals, picks=picks)

    @classmethod
    def summarize(cls, params: ArmParams, results: Sequence[Result], record: ArmRecord | None,
                  peers: Mapping[str, Sequence[Result]]) -> ArmExtras | None:
        stats = pool_stats(results)
        if stats is None:
            return None
        metas = [m for m in cls.metas(results) if isinstance(m, CommitteeMeta)]
        n = len(metas) or 1
        return CommitteeExtras(**stats, distinct=sum(m.distinct for m in metas) / n,
                               vetoed=sum(len(m.vetoed) for m in metas) / n, all_vetoed=sum(m.all_vetoed for m in metas))

    async def _criticise(
        self, query: Query, lm: ExampleCaller, proposals: list[str], unique: list[int]
    ) -> dict[int, list[bool | None]]:
        if self.sound is not None:  # a check sees the query's data fields: never the target
            return {i: [self.sound(proposals[i], query.fields)] for i in unique}
        if not self.params.critics:
            return {}
        replies = await asyncio.gather(
            *(self._judge(lm, critic_messages(self._task_text(query), proposals[i]), self.params.critics) for i in unique)
        )
        return {i: [parse_yes_no(r) for r in texts] for i, texts in zip(unique, replies)}

    async def _compare(
        self, query: Query, lm: ExampleCaller, proposals: list[str], alive: list[int]
    ) -> dict[tuple[int, int], int]:
        pairs = list(itertools.combinations(range(len(alive)), 2))
        task_text = self._task_text(query)
        asked = [
            (proposals[alive[a]], proposals[alive[b]]) if first else (proposals[alive[b]], proposals[alive[a]])
            for a, b in pairs
            for first in (True, False)
        ]
        replies = await asyncio.gather(
            *(self._judge(lm, comparator_messages(task_text, x, y), self.params.votes) for x, y in asked)
        )
        choices: list[list[Choice | None]] = [[parse_choice(r) for r in texts] for texts in replies]
        return {pair: pair_preference(choices[2 * n], choices[2 * n + 1]) for n, pair in enumerate(pairs)}

    async def _judge(self, lm: ExampleCaller, messages: list[Message], n: int) -> list[str]:
        request = lm.request(messages, temperature=self.params.judge_temperature, max_tokens=self.params.judge_max_tokens)
        return [s.text for s in await lm.complete(request, n)]

    def _task_text(self, query: Query) -> str:
        instructions = self.context.task.instructions
        return (f"Instructions: {instructions}\n\n" if instructions else "") + f"Input:\n{query.input}"


def critic_messages(task_text: str, answer: str) -> list[Message]:
    return [
        {"role": "system", "content": CRITIC_SYSTEM},
        {"role": "user", "content": f"{task_text}\n\nProposed answer:\n{answer}\n\nIs this answer correct? Answer yes or no."},
    ]


def comparator_messages(task_text: str, a: str, b: str) -> list[Message]:
    return [
        {"role": "system", "content": COMPARATOR_SYSTEM},
        {"role": "user", "content": f"{task_text}\n\nAnswer A:\n{a}\n\nAnswer B:\n{b}\n\nWhich answer is better, A or B?"},
    ]
