"""Few-shot demonstration selection: seeded random and nearest neighbours, never leaking."""

from __future__ import annotations

import asyncio

from tunewise.arms import ArmContext, build_arm
from tunewise.arms.few_shot import FewShotParams
from tunewise.data import Example, Query
from tunewise.db import connect
from tunewise.taskfile import parse_task


def make_context(tmp_path, train):
    task = parse_task({
        "name": "t", "data": {"path": "d.jsonl", "input": "q", "output": "a"}, "metric": "exact",
        "model": "openai:m", "arms": ["zero_shot"],
    })
    test = [Query("t1", "How do I bake sourdough bread?")]
    return ArmContext(task=task, train=train, dev=[], test=test, db=connect(tmp_path / "db.sqlite")), test[0]


TRAIN = [
    Example("a", "How do I bake rye bread?", "oven", "train"),
    Example("b", "What is the tallest mountain?", "Everest", "train"),
    Example("c", "Which planet is largest?", "Jupiter", "train"),
    Example("d", "How do I bake sourdough bread?", "leak", "train"),  # same input as the test query
    Example("e", "What is a good bread recipe?", "flour", "train"),
]


def prepared(params, context):
    arm = build_arm(params, context)
    asyncio.run(arm.prepare())
    return arm


def select(arm, query):
    return [d.id for d in asyncio.run(arm.demos.select(query))]


def test_knn_picks_the_most_similar_and_never_the_same_input(tmp_path):
    context, query = make_context(tmp_path, TRAIN)
    arm = prepared(FewShotParams(k=2, selector="knn"), context)
    assert query.id in arm.demos.query_vectors  # the test queries were embedded at once, in prepare
    chosen = select(arm, query)
    assert "d" not in chosen
    assert chosen == ["e", "a"]  # most similar last, next to the question
    assert select(arm, Query("new", "How do I bake sourdough bread?")) == chosen  # a query not known in advance


def test_random_is_seeded_per_query(tmp_path):
    context, query = make_context(tmp_path, TRAIN)
    arm = prepared(FewShotParams(k=3), context)
    picks = select(arm, query)
    assert picks == select(arm, query)
    assert len(set(picks)) == 3 and "d" not in picks
    per_query = {tuple(select(arm, Query(f"t{i}", "q?"))) for i in range(3, 13)}
    assert len(per_query) > 1  # demonstrations vary across queries, not one fixed set
