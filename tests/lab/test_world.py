"""The generated world: deterministic, well-formed, and its tasks split the truth as declared."""

from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path

import pytest
import yaml

from tunewise.lab import build_world
from tunewise.lab.tasks import SKILL_SPLIT_SIZES, SPLIT_SIZES
from tunewise.lab.world import generate_world

TASKS = ("facts", "format", "skill", "mixed")


def tree_hash(root: Path) -> str:
    """Hash of every file (path and bytes) under root, world.json included."""
    digest = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            digest.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    return digest.hexdigest()


def examples(world_dir: Path, task: str) -> list[dict]:
    """data.jsonl of a task."""
    lines = (world_dir / "tasks" / task / "data.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_same_seed_gives_identical_bytes_and_other_seed_differs(world_dir: Path, tmp_path: Path) -> None:
    again = build_world(0, tmp_path / "again")
    other = build_world(1, tmp_path / "other")
    assert tree_hash(again) == tree_hash(world_dir)
    assert tree_hash(other) != tree_hash(world_dir)
    assert json.loads((other / "world.json").read_text())["seed"] == 1


def test_rebuilding_in_place_gives_the_same_world(tmp_path: Path) -> None:
    first = tree_hash(build_world(1, tmp_path / "w"))
    assert tree_hash(build_world(1, tmp_path / "w")) == first
    build_world(2, tmp_path / "w")
    assert tree_hash(build_world(1, tmp_path / "w")) == first, "stale files of seed 2 survived"


def test_refuses_to_write_into_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        build_world(0, tmp_path)


def test_world_json_records_seed_version_counts_and_hash(world_dir: Path) -> None:
    from tunewise.lab.worlddir import content_hash

    meta = json.loads((world_dir / "world.json").read_text())
    assert meta["seed"] == 0 and meta["generator_version"]
    assert meta["content_hash"] == content_hash(world_dir)
    assert meta["entities"]["people"] > 0 and meta["known_facts"] > 0 and meta["unknown_facts"] > 0


@pytest.mark.parametrize("task", TASKS)
def test_examples_have_the_declared_fields_splits_and_unique_ids(world_dir: Path, task: str) -> None:
    rows = examples(world_dir, task)
    assert all(list(r) == ["id", "question", "answer", "split", "gold_docs"] for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({r["question"] for r in rows}) == len(rows), "a question repeats (leaks across splits)"
    sizes = SKILL_SPLIT_SIZES if task == "skill" else SPLIT_SIZES
    assert {s: sum(r["split"] == s for r in rows) for s in sizes} == sizes
    assert all(r["answer"] and r["question"] for r in rows)


@pytest.mark.parametrize("task", TASKS)
def test_task_yaml_has_the_loader_shape(world_dir: Path, task: str) -> None:
    spec = yaml.safe_load((world_dir / "tasks" / task / "task.yaml").read_text())
    assert spec["name"] == task
    assert spec["data"] == {"path": "data.jsonl", "input": "question", "output": "answer", "split_field": "split"}
    assert spec["metric"] in ("exact", "normalized")
    assert spec["model"]["uri"] == "lab:../.."
    assert (world_dir / "tasks" / task / "../..").resolve() == world_dir.resolve()
    assert spec["arms"][0] == "zero_shot" and spec["instructions"]


def test_every_answer_with_gold_docs_is_stated_in_them(world_dir: Path) -> None:
    docs = {p.stem: p for p in (world_dir / "docs").iterdir()}
    truth = {f.question: f for f in generate_world(0).facts()}
    for task in ("facts", "format", "mixed"):
        for r in examples(world_dir, task):
            fact = truth[r["question"]]
            assert r["answer"] == (fact.value if task != "format" else f"ANSWER: {fact.value} (confidence: high)")
            assert r["gold_docs"], r
            sentences = [
                s for d in r["gold_docs"] for s in html.unescape(docs[d].read_text(encoding="utf-8")).split(". ")
            ]
            assert any(fact.subject in s and fact.value in s for s in sentences), r


def test_documents_come_in_three_formats_and_include_distractors(world_dir: Path) -> None:
    docs = list((world_dir / "docs").iterdir())
    assert {p.suffix for p in docs} == {".md", ".html", ".txt"}
    gold = {d for t in TASKS for r in examples(world_dir, t) for d in r["gold_docs"]}
    assert len({p.stem for p in docs} - gold) >= 20, "too few documents without gold facts"
    assert len({p.stem for p in docs}) == len(docs), "doc ids must be unique file stems"


def test_facts_are_unknown_format_known_mixed_half_and_half(world_dir: Path) -> None:
    truth = {f.question: f.known for f in generate_world(0).facts()}
    assert not any(truth[r["question"]] for r in examples(world_dir, "facts"))
    assert all(truth[r["question"]] for r in examples(world_dir, "format"))
    for split, n in SPLIT_SIZES.items():
        known = [truth[r["question"]] for r in examples(world_dir, "mixed") if r["split"] == split]
        assert sum(known) == n // 2


def test_skill_is_a_consistent_syllable_cipher(world_dir: Path) -> None:
    table: dict[str, str] = {}
    for r in examples(world_dir, "skill"):
        src, dst = r["question"].replace(" ", "-").split("-"), r["answer"].replace(" ", "-").split("-")
        assert len(src) == len(dst)
        for a, b in zip(src, dst):
            assert table.setdefault(a, b) == b, "cipher maps one syllable two ways"
            assert a != b
    assert len(set(table.values())) == len(table)
