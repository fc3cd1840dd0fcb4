"""The small interface every arm implements: prepare once, then answer one example at a time.

An arm never scores itself: it returns an Answer, and the runner applies the task's metric.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path

    from tunewise.caller import ExampleCaller, ModelCaller
    from tunewise.data import Dataset, Example
    from tunewise.knowledge.index import KnowledgeIndex
    from tunewise.runner import ProgressSink
    from tunewise.task import Task


class ArmParams(BaseModel):
    """Parameters common to every arm; each arm adds its own and a literal `arm` tag."""

    model_config = ConfigDict(extra="forbid")

    needs_train: ClassVar[bool] = False
    needs_knowledge: ClassVar[bool] = False
    trains: ClassVar[bool] = False  # fine-tuned arms: a one-off training cost, weighed by break-even

    arm: str
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

    @property
    def label(self) -> str:
        """How the arm is named in results: `name` if given, else the arm type."""
        return self.name or self.arm

    def check(self, task: Task, index: int) -> None:
        """Raise InputError if this arm cannot run on `task` (found before a run starts)."""


@dataclass(frozen=True)
class Retrieved:
    """A passage an arm put in front of the model, by document."""

    doc_id: str
    text: str


@dataclass
class Answer:
    """An arm's final answer to one example, what it retrieved (the runner scores retrieval too),
    and what it wants recorded (e.g. demo ids).

    An arm that chose its answer from a pool (samples, proposals) gives the pool as `candidates`, in
    the order drawn, and may name other choices it would make from it in `picks` (e.g. "maj@4": the
    index of the majority answer of the first 4). The runner scores every candidate, so curves like
    maj@k and best-of-k are measured without the arm seeing a target."""

    text: str
    meta: dict[str, Any] = field(default_factory=dict)
    retrieved: list[Retrieved] | None = None
    candidates: list[str] | None = None
    picks: dict[str, int] | None = None


@dataclass
class ArmContext:
    """What an arm may use: the task, its splits, the database, when the task has documents their index,
    the run's folder (for what an arm trains), where to report training progress, and the task's model
    for calls `prepare` makes on train examples (cached and logged like every call; the arm sums their
    cost into its `fixed_cost`).

    Arms must not read the targets of test examples; only the runner does, to score."""

    task: Task
    dataset: Dataset
    db: sqlite3.Connection
    knowledge: KnowledgeIndex | None = None
    run_dir: Path | None = None
    progress: ProgressSink | None = None
    caller: ModelCaller | None = None


class Arm(ABC):
    """One adaptation strategy."""

    def __init__(self, params: ArmParams, context: ArmContext):
        self.params = params
        self.context = context

    @property
    def name(self) -> str:
        return self.params.label

    async def prepare(self) -> None:
        """One-off work before answering (index demonstrations, train, ...)."""

    @property
    def record(self) -> dict[str, Any]:
        """What `prepare` did that the run's manifest should keep (training time, steps, `fixed_cost`)."""
        return {}

    def caller(self, default: ModelCaller) -> ModelCaller:
        """The model this arm calls: the task's, unless the arm brings its own (a fine-tuned one)."""
        return default

    async def aclose(self) -> None:
        """Release what `prepare` opened."""

    @abstractmethod
    async def answer(self, example: Example, lm: ExampleCaller) -> Answer:
        """Answer one test example, calling the model only through `lm`."""
