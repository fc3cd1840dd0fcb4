"""`rag` and `few_shot_rag`: the top-k chunks retrieved for the input, shown with their sources.

Retrieval is dense (the knowledge embedder, all-MiniLM-L6-v2 by default), BM25, or hybrid
(reciprocal rank fusion); no LLM calls.
`few_shot_rag` adds demonstrations from the train split, each without retrieved context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from tunewise.arms.base import Answer, Arm, ArmParams, Retrieved
from tunewise.arms.demos import DemoSelector, Selector
from tunewise.batching import MicroBatcher
from tunewise.prompt import ContextChunk, Demo, build_messages

if TYPE_CHECKING:
    from tunewise.caller import ExampleCaller
    from tunewise.data import Example
    from tunewise.knowledge.index import Hit

RetrieverName = Literal["dense", "bm25", "hybrid"]


class RagParams(ArmParams):
    needs_knowledge = True

    arm: Literal["rag"] = "rag"
    k: int = Field(4, ge=1, le=50, description="chunks per prompt")
    retriever: RetrieverName = "hybrid"


class FewShotRagParams(RagParams):
    needs_train = True

    arm: Literal["few_shot_rag"] = "few_shot_rag"  # type: ignore[assignment]
    shots: int = Field(3, ge=1, le=64, description="demonstrations per prompt")
    selector: Selector = "random"


class RagArm(Arm):
    params: RagParams

    async def prepare(self) -> None:
        index = self.context.knowledge
        assert index is not None, "the experiment builds the index for arms that need one"
        k, retriever = self.params.k, self.params.retriever
        # Queries that arrive together are embedded as one batch, off the event loop.
        self.retrieve: MicroBatcher[str, list[Hit]] = MicroBatcher(
            lambda queries: index.search_many(queries, k, retriever), max_batch=64
        )

    def demonstrations(self, example: Example) -> list[Example]:
        """Train examples to show before the input (none for plain rag)."""
        return []

    async def answer(self, example: Example, lm: ExampleCaller) -> Answer:
        hits = await self.retrieve.submit(example.input)
        context = [ContextChunk(h.chunk.text, h.chunk.source) for h in hits]
        shown = self.demonstrations(example)
        demos = [Demo(d.input, d.target) for d in shown]
        messages = build_messages(self.context.task.instructions, example.input, demos, context)
        meta: dict[str, list[str]] = {"chunks": [h.chunk.id for h in hits]}
        if shown:
            meta["demos"] = [d.id for d in shown]
        return Answer(
            await lm.chat(messages), meta, retrieved=[Retrieved(h.chunk.doc_id, h.chunk.text) for h in hits]
        )


class FewShotRagArm(RagArm):
    params: FewShotRagParams

    async def prepare(self) -> None:
        await super().prepare()
        self.selector = DemoSelector(self.context, k=self.params.shots, selector=self.params.selector)

    def demonstrations(self, example: Example) -> list[Example]:
        return self.selector.select(example)
