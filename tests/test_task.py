"""load_task on valid files: shorthand forms, defaults, paths and the fingerprint."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunewise.evaluation.manifest import fingerprint
from tunewise.spec import Task
from tunewise.taskfile import load_task

DATA = '{"question": "q1", "answer": "a1"}\n{"question": "q2", "answer": "a2"}\n'

TASK = """\
name: shorthand
data:
  path: data.jsonl
  input: question
  output: answer
metric: normalized
model: openai:x
arms:
  - zero_shot
  - few_shot: {k: 3}
  - {arm: few_shot, name: fs_knn, selector: knn}
"""

# The same task as TASK, written differently: comments, blank lines, flow vs block style,
# quoting, key order and the long form of the shorthands.
TASK_REFORMATTED = """\
# a comment at the top

arms:   # the ladder
  - arm: zero_shot
  - few_shot:
      k: 3
  - arm: few_shot
    selector: "knn"
    name: 'fs_knn'

model: {uri: "openai:x"}
metric:
  name: normalized   # case/punctuation-insensitive
data: {path: data.jsonl, input: question, output: answer}
name: shorthand
"""


def write(tmp_path: Path, task: str = TASK, data: str = DATA, name: str = "task.yaml") -> Path:
    (tmp_path / "data.jsonl").write_text(data, encoding="utf-8")
    path = tmp_path / name
    path.write_text(task, encoding="utf-8")
    return path


def test_shorthand_forms(tmp_path: Path) -> None:
    task = load_task(write(tmp_path))
    assert isinstance(task, Task)
    assert task.model.uri == "openai:x"
    assert task.model.scheme == "openai" and task.model.name == "x"
    assert task.metric.name == "normalized"
    assert [a.arm for a in task.arms] == ["zero_shot", "few_shot", "few_shot"]
    assert [a.label for a in task.arms] == ["zero_shot", "few_shot", "fs_knn"]
    assert task.arms[1].k == 3
    assert task.arms[1].selector == "random"
    assert task.arms[2].selector == "knn"
    assert task.arms[2].k == 4  # default k


def test_bare_arm_with_null_params(tmp_path: Path) -> None:
    task = load_task(write(tmp_path, TASK.replace("  - few_shot: {k: 3}\n", "  - few_shot:\n")
                           .replace("  - {arm: few_shot, name: fs_knn, selector: knn}\n", "")))
    assert [a.label for a in task.arms] == ["zero_shot", "few_shot"]
    assert task.arms[1].k == 4


def test_defaults(tmp_path: Path) -> None:
    task = load_task(write(tmp_path))
    assert task.description == "" and task.instructions == ""
    assert task.seed == 0
    assert task.data.input_fields == ["question"]
    assert task.data.template is None and task.data.id is None and task.data.split_field is None
    assert task.data.max_test is None
    assert (task.data.split.train, task.data.split.dev, task.data.split.test) == (0.5, 0.1, 0.4)
    assert task.data.split.seed == 0
    m = task.model
    assert m.base_url is None
    assert m.api_key_env == "OPENAI_API_KEY"
    assert m.max_concurrency == 8
    assert m.temperature == 0.0
    assert m.max_tokens == 256
    assert m.price_in_per_1m == 0.0 and m.price_out_per_1m == 0.0
    r = task.requirements
    assert (r.min_score, r.max_p95_latency_ms, r.max_cost_per_1k, r.monthly_queries) == (None, None, None, None)
    assert task.path == tmp_path / "task.yaml"


def test_multi_field_input_and_full_forms(tmp_path: Path) -> None:
    text = TASK.replace("  input: question\n", "  input: [question, context]\n").replace(
        "model: openai:x\n",
        "model:\n  uri: hf:some/model\n  max_concurrency: 3\n  price_in_per_1m: 0.5\n",
    ) + "requirements:\n  min_score: 0.8\n  monthly_queries: 100000\n"
    task = load_task(write(tmp_path, text))
    assert task.data.input_fields == ["question", "context"]
    assert task.model.scheme == "hf" and task.model.name == "some/model"
    assert task.model.max_concurrency == 3 and task.model.price_in_per_1m == 0.5
    assert task.requirements.min_score == 0.8 and task.requirements.monthly_queries == 100000


def test_relative_data_path_resolves_against_task_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "project" / "tasks"
    folder.mkdir(parents=True)
    (folder / "sub").mkdir()
    (folder / "sub" / "rows.jsonl").write_text(DATA, encoding="utf-8")
    (folder / "task.yaml").write_text(TASK.replace("path: data.jsonl", "path: sub/rows.jsonl"), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    task = load_task(Path("../project/tasks/task.yaml"))
    assert task.data_path == (folder / "sub" / "rows.jsonl").resolve()
    assert task.data_path.is_file()


def test_absolute_data_path_is_kept(tmp_path: Path) -> None:
    data = tmp_path / "abs" / "d.jsonl"
    data.parent.mkdir()
    data.write_text(DATA, encoding="utf-8")
    task = load_task(write(tmp_path, TASK.replace("path: data.jsonl", f"path: {data}")))
    assert task.data_path == data.resolve()


def test_fingerprint_ignores_reformatting(tmp_path: Path) -> None:
    a = load_task(write(tmp_path, TASK, name="a.yaml"))
    b = load_task(write(tmp_path, TASK_REFORMATTED, name="b.yaml"))
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) == fingerprint(load_task(tmp_path / "a.yaml"))  # deterministic


def test_fingerprint_changes_when_data_changes(tmp_path: Path) -> None:
    path = write(tmp_path)
    before = fingerprint(load_task(path))
    (tmp_path / "data.jsonl").write_text(DATA.replace('"a2"', '"a2 changed"'), encoding="utf-8")
    assert fingerprint(load_task(path)) != before


@pytest.mark.parametrize(
    "old, new",
    [
        ("few_shot: {k: 3}", "few_shot: {k: 5}"),
        ("selector: knn", "selector: random"),
        ("metric: normalized", "metric: exact"),
        ("model: openai:x", "model: openai:y"),
        ("name: shorthand", "name: other"),
        ("  output: answer\n", "  output: answer\n  split: {train: 0.6, dev: 0.0, test: 0.4}\n"),
    ],
)
def test_fingerprint_changes_when_a_parameter_changes(tmp_path: Path, old: str, new: str) -> None:
    before = fingerprint(load_task(write(tmp_path, TASK, name="a.yaml")))
    assert TASK.count(old) == 1
    after = fingerprint(load_task(write(tmp_path, TASK.replace(old, new), name="b.yaml")))
    assert after != before
