"""`few_shot`: k demonstrations from the train split, chosen at random (seeded) or by similarity.

Leakage guard: demonstrations come only from the train split, and a train example whose input
equals the test input is never shown.
"""

from __future__ import annotations

import hashlib
import random
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from tunewise.arms.base import Answer, Arm, ArmParams
from tunewise.errors import InputError
from tunewise.prompt import Demo, build_messages

if TYPE_CHECKING:
    import numpy as np

    from tunewise.caller import ExampleCaller
    from tunewise.data import Example


class FewShotParams(ArmParams):
    arm: Literal["few_shot"] = "few_shot"
    k: int = Field(4, ge=1, le=64)
    selector: Literal["random", "knn"] = "random"


class FewShotArm(Arm):
    params: FewShotParams

    async def prepare(self) -> None:
        self.pool = self.context.dataset.train
        if not self.pool:
            raise InputError(f"arm '{self.name}' needs train examples, but the train split is empty")
        self.vectors: np.ndarray | None = None
        if self.params.selector == "knn":
            from tunewise.knowledge.embedder import Embedder

            self.embedder = Embedder(self.context.db)
            self.vectors = self.embedder.embed([e.input for e in self.pool])

    def select(self, example: Example) -> list[Example]:
        """The demonstrations for one test example, most similar last (nearest to the question)."""
        candidates = [i for i, e in enumerate(self.pool) if e.input != example.input and e.id != example.id]
        k = min(self.params.k, len(candidates))
        if self.vectors is None:
            seed = hashlib.sha256(f"{self.context.task.seed}:{example.id}".encode()).digest()
            chosen = random.Random(seed).sample(candidates, k)
        else:
            query = self.embedder.embed([example.input])[0]
            sims = self.vectors[candidates] @ query
            chosen = [candidates[j] for j in sims.argsort(kind="stable")[::-1][:k]][::-1]
        return [self.pool[i] for i in chosen]

    async def answer(self, example: Example, lm: ExampleCaller) -> Answer:
        demos = self.select(example)
        messages = build_messages(
            self.context.task.instructions, example.input, [Demo(d.input, d.target) for d in demos]
        )
        return Answer(await lm.chat(messages), {"demos": [d.id for d in demos]})
