"""The built-in metrics and python:module:function metrics loaded next to the task file."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from tunewise.metrics import (
    build_metric,
    contains,
    exact,
    f1,
    json_metric,
    normalize,
    normalized,
    parse_json_answer,
    regex_metric,
)
from tunewise.spec import MetricSpec
from tunewise.taskfile import load_task


def test_exact() -> None:
    assert exact("Paris", "Paris") == 1.0
    assert exact("  Paris\n", "Paris ") == 1.0  # surrounding whitespace only
    assert exact("paris", "Paris") == 0.0
    assert exact("Paris.", "Paris") == 0.0
    assert exact("Pa ris", "Paris") == 0.0


def test_normalized() -> None:
    assert normalize("  The  QUICK, brown\tfox!\n") == "the quick brown fox"
    assert normalized("The Quick, brown fox!", "the quick brown   fox") == 1.0
    assert normalized("PARIS.", "paris") == 1.0
    assert normalized("Paris, France", "Paris") == 0.0
    assert normalized("", "") == 1.0
    assert normalized("a", "") == 0.0


def test_f1_partial_overlap_value() -> None:
    # pred tokens: the cat sat on mat (5); gold: the cat is on the mat (6); common: the, cat, on, mat = 4
    precision, recall = 4 / 5, 4 / 6
    expected = 2 * precision * recall / (precision + recall)  # = 8/11
    assert f1("The cat sat on mat", "the cat is on the mat") == pytest.approx(expected)
    assert expected == pytest.approx(8 / 11)
    assert f1("Paris!", "paris") == 1.0
    assert f1("london", "paris") == 0.0
    assert f1("", "") == 1.0
    assert f1("", "paris") == 0.0
    assert f1("paris", "") == 0.0
    # repeated tokens count only as often as they appear in both
    assert f1("the the the", "the cat") == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))


def test_contains() -> None:
    assert contains("I think the answer is Paris, France.", "paris france") == 1.0
    assert contains("The answer: PARIS", "Paris!") == 1.0
    assert contains("London", "Paris") == 0.0
    assert contains("Paris", "Paris, France") == 0.0


def test_contains_matches_whole_words() -> None:
    assert contains("I do not know", "no") == 0.0
    assert contains("concatenate the strings", "cat") == 0.0


def test_regex_with_and_without_group() -> None:
    with_group = regex_metric(r"[Aa]nswer:\s*(\w+)")
    assert with_group("Let me think... Answer: Paris. Done.", "paris") == 1.0
    assert with_group("Answer: London", "Paris") == 0.0
    assert with_group("no marker here: Paris", "Paris") == 0.0
    assert with_group("Answer: Paris and later answer: London", "Paris") == 1.0  # first match
    whole = regex_metric(r"\d+")
    assert whole("There are 42 apples", "42") == 1.0
    assert whole("There are 42 apples and 7 pears", "7") == 0.0
    assert whole("none", "42") == 0.0


def test_regex_with_unmatched_group_scores_zero() -> None:
    score = regex_metric(r"answer: (\d+)|no answer")
    assert score("answer: 5", "5") == 1.0
    assert score("no answer", "5") == 0.0


def test_json_field_by_field() -> None:
    m = json_metric()
    gold = '{"name": "Ada", "year": 1843, "field": "math"}'
    assert m('{"name": "Ada", "year": 1843, "field": "math"}', gold) == 1.0
    assert m('{"field": "math", "year": 1843, "name": "Ada", "extra": 1}', gold) == 1.0
    assert m('{"name": "Ada", "year": 1850, "field": "math"}', gold) == pytest.approx(2 / 3)
    assert m('{"name": "Ada"}', gold) == pytest.approx(1 / 3)
    assert m('```json\n{"name": "Ada", "year": 1843, "field": "poetry"}\n```', gold) == pytest.approx(2 / 3)
    assert m('```\n{"name": "Ada", "year": 1843, "field": "math"}\n```', gold) == 1.0
    assert m("not json at all", gold) == 0.0
    assert m('{"name": "Ada", ', gold) == 0.0
    assert m('["Ada", 1843]', gold) == 0.0
    only = json_metric(["name", "year"])
    assert only('{"name": "Ada", "year": 1843, "field": "poetry"}', gold) == 1.0
    assert only('{"name": "Ada", "year": 1, "field": "math"}', gold) == 0.5


def test_json_non_object_targets() -> None:
    m = json_metric()
    assert m("[1, 2]", "[1, 2]") == 1.0
    assert m("[2, 1]", "[1, 2]") == 0.0
    assert m("garbage", "garbage") == 0.0  # neither is JSON: no credit
    assert parse_json_answer('  ```json\n{"a": 1}\n```  ') == {"a": 1}
    assert parse_json_answer("nope") is None


@pytest.mark.parametrize(
    "spec, pred, target, expected",
    [
        ("exact", "Paris", "Paris", 1.0),
        ("normalized", "PARIS!", "paris", 1.0),
        ("f1", "red car", "red bus", 0.5),
        ("contains", "it is Paris", "paris", 1.0),
        ({"name": "regex", "pattern": r"=\s*(\d+)"}, "x = 12", "12", 1.0),
        ({"name": "json", "fields": ["a"]}, '{"a": 1, "b": 2}', '{"a": 1, "b": 3}', 1.0),
        ({"name": "json"}, '{"a": 1, "b": 2}', '{"a": 1, "b": 3}', 0.5),
    ],
)
def test_metric_spec_builds_the_named_metric(spec: object, pred: str, target: str, expected: float) -> None:
    assert build_metric(MetricSpec.model_validate(spec))(pred, target) == pytest.approx(expected)


def _task_with_metric(folder: Path, metric: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.jsonl").write_text('{"q": "x", "a": "y"}\n', encoding="utf-8")
    path = folder / "task.yaml"
    path.write_text(
        "name: custom\n"
        "data: {path: data.jsonl, input: q, output: a}\n"
        f"metric: {metric}\n"
        "model: openai:m\n"
        "arms: [zero_shot]\n",
        encoding="utf-8",
    )
    return path


def test_python_metric_loaded_from_next_to_the_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = f"tw_custom_metric_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "task_dir"
    path = _task_with_metric(folder, f"python:{module}:score")
    (folder / f"{module}.py").write_text(
        "def score(prediction, target):\n"
        "    return len(set(prediction) & set(target)) / len(set(target))\n"
        "def is_upper(prediction, target):\n"
        "    return prediction.isupper()\n",
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr("sys.path", list(sys.path))  # the loader must not need sys.path
    task = load_task(path)
    metric = build_metric(task.metric, task.base_dir)
    assert metric("abcd", "ab") == 1.0
    assert metric("axyz", "abcd") == pytest.approx(0.25)
    assert metric("", "abcd") == 0.0
    booly = build_metric(MetricSpec.model_validate(f"python:{module}:is_upper"), task.base_dir)
    assert booly("YES", "") == 1.0 and booly("no", "") == 0.0
    assert isinstance(booly("YES", ""), float)


def test_python_metric_modules_of_the_same_name_in_two_task_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.path", list(sys.path))
    module = f"tw_scorer_{uuid.uuid4().hex[:8]}"
    scores = {}
    for name, value in (("a", 1.0), ("b", 0.0)):
        path = _task_with_metric(tmp_path / name, f"python:{module}:score")
        (tmp_path / name / f"{module}.py").write_text(f"def score(p, t):\n    return {value}\n", encoding="utf-8")
        task = load_task(path)
        scores[name] = build_metric(task.metric, task.base_dir)("x", "y")
    assert scores == {"a": 1.0, "b": 0.0}
