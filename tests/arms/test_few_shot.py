"""Few-shot demonstration selection: seeded random and nearest neighbours, never leaking."""

from __future__ import annotations

from tunewise.arms import ArmContext, build_arm
from tunewise.arms.few_shot import FewShotParams
from tunewise.data import Dataset, Example
from tunewise.db import connect
from tunewise.task import Task


def make_context(tmp_path, train):
    task = Task.model_validate({
        "name": "t", "data": {"path": "d.jsonl", "input": "q", "output": "a"}, "metric": "exact",
        "model": "openai:m", "arms": ["zero_shot"],
    })
    test = [Example("t1", "How do I bake sourdough bread?", "x", "test")]
    return ArmContext(task=task, dataset=Dataset(train=train, dev=[], test=test), db=connect(tmp_path / "db.sqlite")), test[0]


TRAIN = [
    Example("a", "How do I bake rye bread?", "oven", "train"),
    Example("b", "What is the tallest mountain?", "Everest", "train"),
    Example("c", "Which planet is largest?", "Jupiter", "train"),
    Example("d", "How do I bake sourdough bread?", "leak", "train"),  # same input as the test example
    Example("e", "What is a good bread recipe?", "flour", "train"),
]


async def _prepare(arm):
    await arm.prepare()
    return arm


def test_knn_picks_the_most_similar_and_never_the_same_input(tmp_path):
    import asyncio

    context, example = make_context(tmp_path, TRAIN)
    arm = asyncio.run(_prepare(build_arm(FewShotParams(k=2, selector="knn"), context)))
    chosen = [d.id for d in arm.demos.select(example)]
    assert "d" not in chosen
    assert chosen == ["e", "a"]  # most similar last, next to the question


def test_random_is_seeded_per_example(tmp_path):
    import asyncio

    context, example = make_context(tmp_path, TRAIN)
    arm = asyncio.run(_prepare(build_arm(FewShotParams(k=3), context)))
    picks = [d.id for d in arm.demos.select(example)]
    assert picks == [d.id for d in arm.demos.select(example)]
    assert len(set(picks)) == 3 and "d" not in picks
    per_example = {tuple(d.id for d in arm.demos.select(Example(f"t{i}", "q?", "y", "test"))) for i in range(3, 13)}
    assert len(per_example) > 1  # demonstrations vary across examples, not one fixed set
