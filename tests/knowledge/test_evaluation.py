"""Retrieval metrics: doc-level recall@k, reciprocal rank, answer hits on normalized whole words."""

from __future__ import annotations

import pytest

from tunewise.knowledge.evaluation import (
    RetrievalMetrics,
    answer_hit,
    recall_at_k,
    reciprocal_rank,
)


def test_recall_counts_documents_not_chunks_and_only_the_top_k():
    retrieved = ["a", "a", "a", "b", "c"]  # three chunks of a
    assert recall_at_k(retrieved, {"a", "b"}, 3) == 0.5  # b is 4th: outside the top 3
    assert recall_at_k(retrieved, {"a", "b"}, 4) == 1.0
    assert recall_at_k(retrieved, {"a"}, 5) == 1.0  # a's three chunks count once
    assert recall_at_k([], {"a"}, 5) == 0.0
    with pytest.raises(ValueError):
        recall_at_k(retrieved, set(), 3)


def test_reciprocal_rank_is_one_over_the_first_gold_position():
    assert reciprocal_rank(["x", "y", "a"], {"a", "y"}) == 0.5
    assert reciprocal_rank(["a"], {"a"}) == 1.0
    assert reciprocal_rank(["x", "y"], {"a"}) == 0.0


def test_answer_hit_normalizes_and_matches_whole_words():
    texts = ["She was born in 1940.", "The tram costs 4 euros.", "Visit the Café Zürich-Nord today!"]
    assert answer_hit(texts, "4") == 2  # not inside "1940"
    assert answer_hit(texts, "  cafe ZURICH nord ") == 3  # case, accents, punctuation
    assert answer_hit(texts, "born in 1940") == 1
    assert answer_hit(texts, "Berlin") is None
    assert answer_hit(texts, ["Berlin", "tram"]) == 2  # any accepted answer
    assert answer_hit(texts, "?!") is None  # nothing left to look for


def test_accumulated_summary():
    m = RetrievalMetrics(k=2)
    m.add(["a", "b", "c"], gold={"b"})
    m.add(["a", "b", "c"], gold={"c"})  # c is outside the top 2
    m.add(["x"], retrieved_texts=["The answer is Oslo.", "Other"], answer="oslo")
    m.add(["x"], retrieved_texts=["Other", "Nothing", "Oslo"], answer="Oslo")  # 3rd: outside k
    s = m.summary()
    assert (s.n, s.recall_at_k, s.mrr) == (2, 0.5, 0.25)
    assert (s.answer_n, s.answer_hit_rate) == (2, 0.5)
    assert RetrievalMetrics.recall_at_k is recall_at_k
