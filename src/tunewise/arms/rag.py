"""`rag` and `few_shot_rag`: the top-k chunks retrieved for the input, shown with their sources.

Retrieval is dense (the knowledge embedder, all-MiniLM-L6-v2 by default), BM25, or hybrid
(reciprocal rank fusion); no LLM calls.
`few_shot_rag` adds demonstrations from the train split, each without retrieved context.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from tunewise.arms.base import Answer, AnswerMeta, Arm, ArmExtras, ArmParams, ArmRecord, Result, Retrieved
from tunewise.arms.demos import BootstrapRecord, DemoSelector, DemoSettings, Shot
from tunewise.arms.few_shot import bootstrap_extras
from tunewise.batching import MicroBatcher
from tunewise.data import Example, Query
from tunewise.prompt import ContextChunk, build_messages

if TYPE_CHECKING:
    from tunewise.calls.caller import ExampleCaller
    from tunewise.knowledge.index import Hit

RetrieverName = Literal["dense", "bm25", "hybrid"]


class RagParams(ArmParams):
    needs_knowledge = True

    arm: Literal["rag"] = "rag"
    k: int = Field(4, ge=1, le=50, description="chunks per prompt")
    retriever: RetrieverName = "hybrid"


class FewShotRagParams(RagParams, DemoSettings):
    needs_train = True
    demos_field = "shots"

    arm: Literal["few_shot_rag"] = "few_shot_rag"  # type: ignore[assignment]
    shots: int = Field(3, ge=1, le=64, description="demonstrations per prompt")


class RagMeta(AnswerMeta):
    chunks: list[str] = Field(default_factory=list, description="ids of the chunks shown, best first")
    demos: list[str] | None = Field(None, description="ids of the train examples shown (few_shot_rag)")


class RagArm(Arm):
    Params = RagParams
    Meta = RagMeta
    params: RagParams
    serves = frozenset({"n", "temperature", "max_tokens", "stop"})

    async def prepare(self) -> ArmRecord | None:
        index = self.context.knowledge
        assert index is not None, "the experiment builds the index for arms that need one"
        k, retriever = self.params.k, self.params.retriever
        # Queries that arrive together are embedded as one batch, off the event loop.
        self.retrieve: MicroBatcher[str, list[Hit]] = MicroBatcher(
            lambda queries: index.search_many(queries, k, retriever), max_batch=64
        )
        return None

    async def demonstrations(self, query: Query) -> list[Shot]:
        """Train examples to show before the input (none for plain rag)."""
        return []

    async def ask(self, query: Query, shots: list[Shot], lm: ExampleCaller) -> Answer:
        hits = await self.retrieve.submit(query.input)
        context = [ContextChunk(h.chunk.text, h.chunk.source) for h in hits]
        messages = build_messages(self.context.task.instructions, query.input, [s.demo for s in shots], context,
                                  self.history(query))
        meta = RagMeta(chunks=[h.chunk.id for h in hits], demos=[s.id for s in shots] if shots else None)
        return Answer(await lm.chat(messages), meta, retrieved=[Retrieved(h.chunk.doc_id, h.chunk.text) for h in hits])

    async def answer(self, query: Query, lm: ExampleCaller) -> Answer:
        return await self.ask(query, await self.demonstrations(query), lm)


class FewShotRagArm(RagArm):
    Params = FewShotRagParams
    Record = BootstrapRecord
    params: FewShotRagParams

    async def prepare(self) -> ArmRecord | None:
        await super().prepare()
        self.selector = DemoSelector(self.context, k=self.params.shots, settings=self.params)
        return await self.selector.prepare(self.name, self.attempt)

    async def attempt(self, example: Example, lm: ExampleCaller) -> Answer:
        """A train example answered under this arm's prompt: retrieval, and random demonstrations from the rest."""
        return await self.ask(example.query, self.selector.random_shots(example), lm)

    async def demonstrations(self, query: Query) -> list[Shot]:
        return await self.selector.select(query)

    @classmethod
    def summarize(cls, params: ArmParams, results: Sequence[Result], record: ArmRecord | None,
                  peers: Mapping[str, Sequence[Result]]) -> ArmExtras | None:
        shown = [len(m.demos or []) for m in cls.metas(results) if isinstance(m, RagMeta)]
        return bootstrap_extras(record, shown)
