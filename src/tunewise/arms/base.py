"""The contract every arm implements, and what crosses it.

    Query (no target) --Arm.answer--> Answer --runner scores it--> Result --Arm.summarize--> ArmExtras

An arm declares its parameters (`Params`, validated from the task file), what it records with each answer
(`Meta`), what its one-off `prepare` did (`Record`, kept in the run's manifest) and the statistics of its own
it adds to summary.json (`summarize`, returning an `ArmExtras`). It answers `Query` objects, which hold no
target: the runner alone holds test targets, and scores. An arm never scores itself.
"""

from __future__ import annotations

import functools
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, TypeAdapter

from tunewise.calls.caller import Prices, Usage
from tunewise.data import Example, Query
from tunewise.prompt import Message
from tunewise.spec import ArmParams, ModelSpec

if TYPE_CHECKING:
    from pathlib import Path

    from tunewise.calls.caller import ExampleCaller, ModelCaller
    from tunewise.db import Database
    from tunewise.knowledge.index import KnowledgeIndex
    from tunewise.spec import Task


class _Typed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnswerMeta(_Typed):
    """What an arm records with each answer (demonstrations shown, chunks retrieved, a gate's decision)."""


class ArmRecord(_Typed):
    """What an arm's `prepare` did, kept in the run's manifest: its one-off cost (US$, at the run's prices) and
    calls."""

    # Fields that say how this preparation went rather than what it made (`differs` ignores them).
    circumstances: ClassVar[frozenset[str]] = frozenset({"fixed_cost", "usage"})

    fixed_cost: float = 0.0
    usage: Usage | None = None

    def differs(self, recorded: ArmRecord) -> list[str]:
        """The fields in which this preparation made something other than the recorded one (what a server must
        not do: serve another gate, other demonstrations, another adapter than the run measured)."""
        now, then = self.model_dump(exclude=self.circumstances), recorded.model_dump(exclude=self.circumstances)
        return sorted(k for k in now.keys() | then.keys() if now.get(k) != then.get(k))

    def priced(self, prices: Prices, model: ModelSpec) -> float:
        """The one-off cost at other prices: its calls' tokens priced again (what is not calls keeps its cost)."""
        return self.fixed_cost if self.usage is None else prices.of(self.usage.tokens_in, self.usage.tokens_out)


class ArmExtras(_Typed):
    """An arm's own statistics in summary.json (`extras`) and in both reports.

    The reports show every arm's extras in the section named `section`, one table per extras class (a row
    per arm, a column per field, headed by the field's `title`), with `caption` under it and the arm's
    `notes()`. Fields holding a mapping of numbers (a curve such as maj@k) are shown as `key: value` lists."""

    section: ClassVar[str] = "Arm statistics"
    caption: ClassVar[str] = ""

    def notes(self, arm: str) -> list[str]:
        """Sentences the report shows below the table, e.g. what a fitted rule means in words."""
        return []


@dataclass(frozen=True)
class Retrieved:
    """A passage an arm put in front of the model, by document."""

    doc_id: str
    text: str


@dataclass
class Answer:
    """An arm's answer to one query, what it retrieved (the runner scores retrieval too), and what it
    records (`meta`, of the arm's `Meta` class).

    An arm that chose its answer from a pool (samples, proposals) gives the pool as `candidates`, in the
    order drawn, and may name other choices it would make from it in `picks` (e.g. "maj@4": the index of
    the majority answer of the first 4). The runner scores every candidate, so curves like maj@k and
    best-of-k are measured without the arm seeing a target.

    An arm that declines to answer (a verifier finding the answer rests on a retracted premise) says why in
    `abstained`; `text` is then what the user is told, and it is scored as the metric says."""

    text: str
    meta: AnswerMeta | None = None
    retrieved: list[Retrieved] | None = None
    candidates: list[str] | None = None
    picks: dict[str, int] | None = None
    abstained: str | None = None


@dataclass(frozen=True)
class PoolScores:
    """Every candidate of an answer's pool, scored in the order drawn, and the arm's named picks from it."""

    scores: list[float]
    picks: dict[str, int]


@dataclass(frozen=True)
class RetrievalScore:
    """How well an answer's retrieval did: recall@k and reciprocal rank, against the example's gold
    documents (`by` "gold_docs") or, lacking those, whether a passage holds the answer (`by` "answer")."""

    k: int
    by: str
    recall: float
    rr: float


@dataclass
class Result:
    """One arm's answer to one example, scored by the runner, with what it cost: a line of results.jsonl.

    Trust, also the runner's: `stale` whether the answer is one of the example's stale answers (what resting on
    a superseded or retracted premise gives; None when it has none, or nothing was answered), `abstained` whether
    the arm declined, `grounded` the offline groundedness check of the answer in the passages retrieved (None
    when nothing was retrieved, or the arm declined)."""

    arm: str
    example_id: str
    output: str
    target: str
    score: float
    error: str | None = None
    calls: int = 0
    cached_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    fresh_cost: float = 0.0
    latency_ms: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)
    input: str = ""  # the example's rendered input, for reports (empty in runs recorded before it was kept)
    pool: PoolScores | None = None
    retrieval: RetrievalScore | None = None
    stale: bool | None = None
    abstained: bool = False
    grounded: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The results.jsonl line; `pool` and `retrieval` only where the answer has them."""
        out = dict(vars(self))
        for name in ("pool", "retrieval"):
            value = out.pop(name)
            if value is not None:
                out[name] = vars(value)
        return out

    @classmethod
    def from_json(cls, row: Any) -> Result:
        """A results.jsonl line read back, its fields typed and in range (pydantic's ValidationError, or
        ValueError, says what is wrong when it is not a result). Runs recorded before pools and retrieval had
        fields of their own kept them in meta."""
        if not isinstance(row, dict):
            raise ValueError(f"a JSON {type(row).__name__}, not an object")
        meta = row.get("meta") or {}
        if isinstance(meta, dict):
            meta = dict(meta)
            row = {**row, "meta": meta, "pool": row.get("pool") or meta.pop("pool", None),
                   "retrieval": row.get("retrieval") or meta.pop("retrieval", None)}
        result: Result = _result_adapter().validate_python(row)
        result._check_ranges()
        try:  # text, not halves of surrogate pairs (a `\ud800` escape alone): reports are written as UTF-8
            json.dumps(result.to_json(), ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a \\u escape that is half of a surrogate pair") from None
        return result

    def _check_ranges(self) -> None:
        """Scores and shares in [0, 1], counts, costs and latencies finite and not negative, picks in the pool."""
        fractions = {"score": self.score}
        if self.pool is not None:
            fractions |= {f"pool.scores.{i}": s for i, s in enumerate(self.pool.scores)}
            for name, pick in self.pool.picks.items():
                if not 0 <= pick < len(self.pool.scores):
                    raise ValueError(f"pool.picks.{name}: {pick} is not a candidate of the pool")
        if self.retrieval is not None:
            fractions |= {"retrieval.recall": self.retrieval.recall, "retrieval.rr": self.retrieval.rr}
        if self.grounded is not None:
            fractions["grounded"] = self.grounded
        for name, value in fractions.items():
            if not 0 <= value <= 1:
                raise ValueError(f"{name}: {value} is not between 0 and 1")
        amounts = {name: getattr(self, name) for name in _AMOUNTS}
        if self.retrieval is not None:
            amounts["retrieval.k"] = self.retrieval.k
        for name, value in amounts.items():
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: {value} is not a number >= 0")


_AMOUNTS = ("calls", "cached_calls", "tokens_in", "tokens_out", "cost", "fresh_cost", "latency_ms")


@functools.cache
def _result_adapter() -> TypeAdapter[Result]:
    return TypeAdapter(Result)


@dataclass
class Evaluated:
    """Examples evaluated for an arm's `prepare` (see ArmContext.evaluate): a scored Result each, in the order
    given (errors included, scored 0)."""

    results: list[Result]

    @property
    def usage(self) -> Usage:
        """What their calls took, summed: the arm's one-off cost of this evaluation."""
        return Usage(**{f.name: sum(getattr(r, f.name) for r in self.results) for f in fields(Usage)})


AnswerFn = Callable[[Example, "ExampleCaller"], Awaitable[Answer]]


class Evaluator(Protocol):
    """Evaluation of train (or dev) examples for an arm's `prepare`: the test metric, concurrency, cache, error
    policy and progress of the test evaluation. `answer(example, lm)` answers one; the evaluator scores it
    against the example's target, every candidate too."""

    async def __call__(self, arm: str, examples: Sequence[Example], answer: AnswerFn, *, label: str) -> Evaluated: ...


@dataclass
class ArmContext:
    """What an arm may use: the task; its train and dev examples, and its test *queries* (no targets); the
    database; the knowledge index when the task has documents; the run's folder (for what an arm trains);
    where the task's hf:/lab: model loads from; the task's model for calls `prepare` makes; the evaluator for
    train examples; where to report training steps (arm, step, total, loss)."""

    task: Task
    train: Sequence[Example]
    dev: Sequence[Example]
    test: Sequence[Query]
    db: Database
    knowledge: KnowledgeIndex | None = None
    run_dir: Path | None = None
    model_source: str | None = None
    caller: ModelCaller | None = None
    evaluate: Evaluator | None = None
    on_training: Callable[[str, int, int, float], None] | None = None
    serving: bool = False  # `prepare` must then reproduce what the run made (an adapter, a job), never make it anew

    def evaluation_inputs(self) -> list[str]:
        """The dev inputs and test queries: what nothing an arm trains on or shows may copy."""
        return [e.input for e in self.dev] + [q.input for q in self.test]


class Arm(ABC):
    """One adaptation strategy (see the module docstring for what it declares)."""

    Params: ClassVar[type[ArmParams]] = ArmParams
    Meta: ClassVar[type[AnswerMeta]] = AnswerMeta
    Record: ClassVar[type[ArmRecord]] = ArmRecord
    # What a served request may set (`tunewise serve`): `n` (choice i draws sample i of each call), and the
    # generation settings the arm leaves to the task. Anything else a client sets is refused, naming it.
    serves: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, params: ArmParams, context: ArmContext):
        self.params = params
        self.context = context

    @property
    def name(self) -> str:
        return self.params.label

    def history(self, query: Query) -> tuple[Message, ...]:
        """The conversation before the query that this arm's prompts show: all of it, or none (`history: none`)."""
        return query.history if self.params.history == "all" else ()

    @classmethod
    def check(cls, params: ArmParams, task: Task, index: int) -> None:
        """Raise InputError (`task.error(..., "arms", index)`) if the arm cannot run on `task`: what validating
        its parameters could not tell (user code that must import, files that must be readable)."""

    async def prepare(self) -> ArmRecord | None:
        """One-off work before answering (choose demonstrations, train, measure); what it did, for the manifest."""
        return None

    def model_caller(self, default: ModelCaller) -> ModelCaller:
        """The model this arm calls: the task's, unless the arm brings its own (a fine-tuned one)."""
        return default

    @classmethod
    def prices(cls, params: ArmParams, model: ModelSpec) -> Prices:
        """What this arm's answers cost per token: the task model's, unless the arm answers with its own model."""
        return Prices(model.price_in_per_1m, model.price_out_per_1m)

    async def aclose(self) -> None:
        """Release what `prepare` opened."""

    @abstractmethod
    async def answer(self, query: Query, lm: ExampleCaller) -> Answer:
        """Answer one query, calling the model only through `lm`."""

    @classmethod
    def summarize(
        cls, params: ArmParams, results: Sequence[Result], record: ArmRecord | None,
        peers: Mapping[str, Sequence[Result]],
    ) -> ArmExtras | None:
        """The arm's own statistics from its scored results (errors included), its `prepare` record and the
        other arms' results of the run (`peers`, by name); None when it has none."""
        return None

    @classmethod
    def metas(cls, results: Sequence[Result]) -> list[AnswerMeta | None]:
        """Each result's `meta` read back as this arm's Meta (None for an errored answer, which has none)."""
        return [cls.Meta.model_validate(r.meta) if r.meta else None for r in results]
