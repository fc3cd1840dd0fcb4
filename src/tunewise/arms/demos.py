"""Choosing demonstrations from the train split: seeded random, or nearest neighbours by embedding.

Leakage guard: only train examples are candidates, and one whose input equals the test input
(a duplicate across splits) is never shown.
"""

from __future__ import annotations

import hashlib
import random
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

    from tunewise.arms.base import ArmContext
    from tunewise.data import Example

Selector = Literal["random", "knn"]


class DemoSelector:
    """Picks k demonstrations for each test example."""

    def __init__(self, context: ArmContext, *, k: int, selector: Selector):
        self.pool = context.dataset.train
        self.k = k
        self.seed = context.task.seed
        self.vectors: np.ndarray | None = None
        if selector == "knn":
            from tunewise.knowledge.embedder import SentenceTransformerEmbedder

            self.embedder = SentenceTransformerEmbedder(context.db)
            self.vectors = self.embedder.embed([e.input for e in self.pool])

    def select(self, example: Example) -> list[Example]:
        """The demonstrations for one test example, most similar last (nearest to the question)."""
        candidates = [i for i, e in enumerate(self.pool) if e.input != example.input and e.id != example.id]
        k = min(self.k, len(candidates))
        if self.vectors is None:
            seed = hashlib.sha256(f"{self.seed}:{example.id}".encode()).digest()
            chosen = random.Random(seed).sample(candidates, k)
        else:
            query = self.embedder.embed([example.input])[0]
            sims = self.vectors[candidates] @ query
            chosen = [candidates[j] for j in sims.argsort(kind="stable")[::-1][:k]][::-1]
        return [self.pool[i] for i in chosen]
