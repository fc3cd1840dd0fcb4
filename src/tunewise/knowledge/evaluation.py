"""How good is retrieval on its own: recall@k and reciprocal rank against gold document ids, and, for
examples that only have a gold answer, the rank of the first retrieved text containing it.

    m = RetrievalMetrics(k=5)
    m.add(["p0007", "p0012", "p0012"], gold={"p0012"})  # doc ids of the hits, best first
    m.summary() -> RetrievalSummary(n=1, recall_at_k=1.0, mrr=0.5, answer_hit_rate=None, answer_n=0)

Ranks count from 1 over the retrieved list as the prompt receives it (one entry per chunk).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tunewise.metrics import normalize


def recall_at_k(retrieved_doc_ids: Sequence[str], gold: Iterable[str], k: int) -> float:
    """Fraction of the gold documents among the first k retrieved; a document's several chunks count once."""
    gold = set(gold)
    if not gold:
        raise ValueError("recall needs at least one gold document id")
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    return len(gold.intersection(retrieved_doc_ids[:k])) / len(gold)


def reciprocal_rank(retrieved_doc_ids: Sequence[str], gold: Iterable[str]) -> float:
    """1 / rank of the first retrieved entry from a gold document; 0.0 if there is none."""
    gold = set(gold)
    for rank, doc_id in enumerate(retrieved_doc_ids, start=1):
        if doc_id in gold:
            return 1.0 / rank
    return 0.0


def _words(text: str) -> str:
    """Normalized as the `normalized`/`contains` metrics do, accents dropped, padded for whole-word matching."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return f" {normalize(folded)} "


def answer_hit(retrieved_texts: Sequence[str], answer: str | Sequence[str]) -> int | None:
    """Rank (from 1) of the first text containing the answer (or any of several accepted answers).

    Containment is on normalized text (lower case, no punctuation or accents, single spaces) and on
    whole words: "4" is not found in "1940".
    """
    answers = [answer] if isinstance(answer, str) else list(answer)
    needles = [_words(a) for a in answers if normalize(a)]
    if not needles:
        return None
    for rank, text in enumerate(retrieved_texts, start=1):
        haystack = _words(text)
        if any(n in haystack for n in needles):
            return rank
    return None


@dataclass(frozen=True)
class RetrievalSummary:
    """Means over the examples added: recall@k and MRR over those with gold ids, answer hits over those with answers."""

    n: int
    recall_at_k: float | None
    mrr: float | None
    answer_hit_rate: float | None
    answer_n: int


@dataclass
class RetrievalMetrics:
    """Accumulates retrieval quality over examples; the per-example functions are also exposed here."""

    k: int
    recalls: list[float] = field(default_factory=list)
    reciprocal_ranks: list[float] = field(default_factory=list)
    answer_ranks: list[int | None] = field(default_factory=list)

    recall_at_k = staticmethod(recall_at_k)
    reciprocal_rank = staticmethod(reciprocal_rank)
    answer_hit = staticmethod(answer_hit)

    def add(
        self,
        retrieved_doc_ids: Sequence[str],
        *,
        gold: Iterable[str] | None = None,
        retrieved_texts: Sequence[str] | None = None,
        answer: str | Sequence[str] | None = None,
    ) -> None:
        """One example: gold document ids if it has them; otherwise the retrieved texts and the gold answer."""
        gold = set(gold or ())
        if gold:
            self.recalls.append(recall_at_k(retrieved_doc_ids, gold, self.k))
            self.reciprocal_ranks.append(reciprocal_rank(retrieved_doc_ids[: self.k], gold))
        elif answer is not None and retrieved_texts is not None:
            rank = answer_hit(retrieved_texts[: self.k], answer)
            self.answer_ranks.append(rank)

    def summary(self) -> RetrievalSummary:
        def mean(values: list[float]) -> float | None:
            return sum(values) / len(values) if values else None

        hits = [1.0 if r is not None else 0.0 for r in self.answer_ranks]
        return RetrievalSummary(
            n=len(self.recalls),
            recall_at_k=mean(self.recalls),
            mrr=mean(self.reciprocal_ranks),
            answer_hit_rate=mean(hits),
            answer_n=len(hits),
        )
