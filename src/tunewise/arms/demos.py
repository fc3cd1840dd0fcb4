"""Choosing demonstrations from the train split: seeded random, nearest neighbours by embedding, or bootstrapped.

- `random`: k train examples drawn for each query, seeded by the task's seed and the query's id.
- `knn`: the k train inputs most similar to the query's (all-MiniLM-L6-v2), the most similar last, next
  to the question.
- `bootstrap` (as DSPy's BootstrapFewShot): up to `max_bootstrap` train examples, in a seeded order, are
  answered under the arm's own prompt (with random demonstrations from the rest of train); those the model
  got right (score >= `bootstrap_threshold`) become the pool, each with the model's own answer as its
  demonstrated output. Each query draws its k from that pool as `random` does. Those calls are the arm's
  one-off cost; they are cached, so a resumed run pays for none of them again.

Leakage guard: only train examples are candidates, and one whose input equals the query's (a duplicate
across splits) is never shown.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from tunewise.arms.base import AnswerFn, ArmContext, ArmRecord, Evaluator
from tunewise.data import Example, Query
from tunewise.finetune.synthetic import load_synthetic
from tunewise.prompt import Demo

if TYPE_CHECKING:
    import numpy as np

    from tunewise.knowledge.embedder import SentenceTransformerEmbedder

Selector = Literal["random", "knn", "bootstrap"]


class DemoSettings(BaseModel):
    """How an arm that shows demonstrations chooses them (its params add these fields)."""

    selector: Selector = "random"
    max_bootstrap: int = Field(32, ge=1, description="bootstrap: train examples tried under the arm's prompt")
    bootstrap_threshold: float = Field(1.0, ge=0, le=1, description="bootstrap: the score that counts as right")
    synthetic: Path | None = Field(
        None, description="a `tunewise synth` set whose examples join the train examples demonstrations are drawn "
        "from, relative to the task file (near-copies of dev or test inputs are dropped)",
    )


@dataclass(frozen=True)
class Shot:
    """A demonstration as shown: the train example it comes from, its input and the answer demonstrated."""

    id: str
    input: str
    output: str

    @property
    def demo(self) -> Demo:
        return Demo(self.input, self.output)


class BootstrapRecord(ArmRecord):
    """What bootstrapping did: how many train examples were tried, which ones the model got right."""

    tried: int = Field(title="tried")
    kept: list[str] = Field(title="kept", description="ids of the train examples that became demonstrations")
    errors: int = 0


def seeded(seed: int, key: str) -> random.Random:
    return random.Random(hashlib.sha256(f"{seed}:{key}".encode()).digest())


class DemoSelector:
    """Picks k demonstrations for each query (see the module docstring)."""

    def __init__(self, context: ArmContext, *, k: int, settings: DemoSettings):
        self.context = context
        self.k = k
        self.settings = settings
        self.seed = context.task.seed
        self.train: list[Example] = list(context.train)
        if settings.synthetic is not None:
            path = context.task.base_dir / settings.synthetic
            self.train += load_synthetic(path, context.evaluation_inputs()).examples()
        self.pool: list[Shot] = [Shot(e.id, e.input, e.target) for e in self.train]
        self.embedder: SentenceTransformerEmbedder | None = None
        self.vectors: np.ndarray | None = None
        self.query_vectors: dict[str, np.ndarray] = {}

    async def prepare(self, arm: str, attempt: AnswerFn) -> BootstrapRecord | None:
        """knn: embed the train inputs and every test query at once, off the event loop; bootstrap: answer
        train examples under the arm's prompt (`attempt`, which may draw `random_shots`) and keep the right ones."""
        if self.settings.selector == "knn":
            await self._embed()
        if self.settings.selector != "bootstrap":
            return None
        assert self.context.evaluate is not None, "the experiment gives arms the prepare-time evaluator"
        return await self.bootstrap(self.context.evaluate, arm, attempt, tries=self.settings.max_bootstrap,
                                    threshold=self.settings.bootstrap_threshold)

    async def _embed(self) -> None:
        from tunewise.knowledge.embedder import SentenceTransformerEmbedder

        embedder = self.embedder = SentenceTransformerEmbedder(self.context.db)
        queries = list(self.context.test)
        vectors = await asyncio.to_thread(embedder.embed, [s.input for s in self.pool] + [q.input for q in queries])
        self.vectors = vectors[: len(self.pool)]
        self.query_vectors = {q.id: v for q, v in zip(queries, vectors[len(self.pool):])}

    async def bootstrap(self, evaluate: Evaluator, arm: str, attempt: AnswerFn, *, tries: int, threshold: float
                        ) -> BootstrapRecord:
        """Make the pool the train examples the model answers right under the arm's prompt (`attempt`)."""
        train = self.train
        order = seeded(self.seed, "bootstrap").sample(train, min(tries, len(train)))
        evaluated = await evaluate(arm, order, attempt, label="bootstrap")
        right = [(e, r) for e, r in zip(order, evaluated.results) if r.error is None and r.score >= threshold]
        self.pool = [Shot(e.id, e.input, r.output) for e, r in right]
        usage = evaluated.usage
        return BootstrapRecord(fixed_cost=usage.cost, usage=usage, tried=len(order), kept=[e.id for e, _ in right],
                               errors=sum(r.error is not None for r in evaluated.results))

    def random_shots(self, query: Query | Example, k: int | None = None) -> list[Shot]:
        """k shots of the pool drawn for this query (seeded by its id), never one with its input."""
        candidates = [s for s in self.pool if s.input != query.input and s.id != query.id]
        return seeded(self.seed, query.id).sample(candidates, min(self.k if k is None else k, len(candidates)))

    async def select(self, query: Query) -> list[Shot]:
        """The demonstrations for one query (knn: most similar last, nearest to the question)."""
        if self.embedder is None or self.vectors is None:
            return self.random_shots(query)
        vector = self.query_vectors.get(query.id)
        if vector is None:  # a query the run did not know in advance (served ones)
            vector = (await asyncio.to_thread(self.embedder.embed, [query.input]))[0]
        candidates = [i for i, s in enumerate(self.pool) if s.input != query.input and s.id != query.id]
        sims = self.vectors[candidates] @ vector
        chosen = [candidates[j] for j in sims.argsort(kind="stable")[::-1][: self.k]][::-1]
        return [self.pool[i] for i in chosen]


