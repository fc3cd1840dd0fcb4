"""`tunewise init DATA`: a commented task file drafted from the user's own data, which the task loader reads and,
once a model is named, `tunewise run` runs; bad data is one line and exit status 2."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from openai_server import CAPITALS

from tunewise.cli import main
from tunewise.data import load_dataset
from tunewise.errors import InputError
from tunewise.evaluation.experiment import RunOptions, check_inputs
from tunewise.scaffold import MODEL_PLACEHOLDER, TaskScaffold, scaffold_task
from tunewise.taskfile import load_task

COUNTRIES = list(CAPITALS.items())  # 80 (country, capital) pairs the loopback server knows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def qa_rows(answers: list[object]) -> list[dict]:
    return [{"question": f"question {i}?", "answer": a} for i, a in enumerate(answers)]


def split_rows(train: int, test: int = 10) -> list[dict]:
    """`train` train and `test` test rows, by a split field, so the train count is exact."""
    return [{"question": f"q{i}", "answer": f"a{i % 3}", "split": "train" if i < train else "test"}
            for i in range(train + test)]


def with_model(text: str, uri: str = "openai:scripted", base_url: str = "http://127.0.0.1:9/v1") -> str:
    """The draft as a user edits it: the model named where the placeholder stood."""
    placeholder = f"  uri: {MODEL_PLACEHOLDER}\n"
    assert text.count(placeholder) == 1
    return text.replace(placeholder, f"  uri: {uri}\n  base_url: {base_url}\n")


def written(drafted: TaskScaffold, *, model: bool = True) -> Path:
    drafted.path.write_text(with_model(drafted.text) if model else drafted.text)
    return drafted.path


def comment_above(text: str, key: str) -> str:
    """The comment lines right above the line `key:` (at any indent), joined."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{key}:"))
    above = []
    for line in reversed(lines[:at]):
        if not line.strip().startswith("#"):
            break
        above.insert(0, line.strip().removeprefix("# "))
    return " ".join(above)


def test_jsonl_question_answer_id_and_hash_split_load_as_a_task(tmp_path):
    rows = [{"id": f"c{i}", "question": f"What is the capital of {c}?", "answer": cap, "note": "seen" if i else None}
            for i, (c, cap) in enumerate(COUNTRIES)]
    data = write_jsonl(tmp_path / "capitals.jsonl", rows)
    drafted = scaffold_task(data, task_path=tmp_path / "task.yaml")
    spec = yaml.safe_load(drafted.text)
    assert (drafted.input, drafted.output) == ("question", "answer")
    assert spec["data"] == {"path": "capitals.jsonl", "input": "question", "output": "answer", "id": "id",
                            "split": {"train": 0.5, "dev": 0.1, "test": 0.4, "seed": 0}}
    assert "'note' (empty or missing in some rows)" in drafted.text
    # Capitals: 80 distinct one-word answers are short answers, not labels.
    assert drafted.metric == "normalized" and spec["instructions"] == "Answer with the answer alone, in at most 1 word."
    task = load_task(written(drafted))
    sizes = load_dataset(task).sizes
    assert sizes == drafted.sizes and sum(sizes.values()) == 80
    assert f"{sizes['train']} train, {sizes['dev']} dev, {sizes['test']} test" in comment_above(drafted.text, "split")
    assert task.arms[1].k == 4 and [a.label for a in task.arms] == ["zero_shot", "few_shot"]


def test_until_the_model_is_set_the_task_fails_at_the_uri_line(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", qa_rows([f"answer {i}" for i in range(30)]))
    path = written(scaffold_task(data, task_path=tmp_path / "task.yaml"), model=False)
    with pytest.raises(InputError) as e:
        load_task(path)
    uri_line = path.read_text().splitlines().index(f"  uri: {MODEL_PLACEHOLDER}") + 1
    assert e.value.line == uri_line and "model.uri" in e.value.message and MODEL_PLACEHOLDER in e.value.message


def test_csv_labels_get_exact_and_every_varying_field_is_the_input(tmp_path):
    labels = ["positive", "negative", "neutral"]
    rows = [{"title": f"t{i}", "text": f"review {i}", "label": labels[i % 3], "source": "web"} for i in range(60)]
    data = write_csv(tmp_path / "reviews.csv", rows)
    drafted = scaffold_task(data, task_path=tmp_path / "task.yaml")
    spec = yaml.safe_load(drafted.text)
    assert spec["data"]["input"] == ["title", "text"] and spec["data"]["output"] == "label"
    assert "'source' (the same in every row)" in drafted.text
    assert drafted.metric == "exact"
    assert all(label in spec["instructions"] for label in labels)
    # Every choice sits under a comment saying why.
    assert comment_above(drafted.text, "metric").startswith("metric: exact, 3 distinct outputs in 60 rows")
    assert comment_above(drafted.text, "output").startswith("output: 'label', named like an output")
    assert comment_above(drafted.text, "input").startswith("input: every other field")
    assert "longest output is 8 characters" in comment_above(drafted.text, "max_tokens")
    task = load_task(written(drafted))
    example = load_dataset(task).test[0]
    assert example.input.startswith("title: t") and "\ntext: review" in example.input and example.target in labels


def test_parquet_conversations_with_json_answers(tmp_path):
    rows = [{"messages": [{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": f"Where is {c}'s capital, as JSON?"}],
             "answer": {"city": cap, "country": c}} for c, cap in COUNTRIES[:40]]
    data = write_parquet(tmp_path / "chats.parquet", rows)
    drafted = scaffold_task(data, task_path=tmp_path / "task.yaml")
    assert (drafted.input, drafted.output, drafted.metric) == ("messages", "answer", "json")
    assert "holds conversations" in comment_above(drafted.text, "input")
    assert "city, country" in yaml.safe_load(drafted.text)["instructions"]
    example = load_dataset(load_task(written(drafted))).test[0]
    assert example.history == ({"role": "system", "content": "Be brief."},)
    assert set(json.loads(example.target)) == {"city", "country"}


@pytest.mark.parametrize(("answers", "metric"), [
    (["yes", "no", "no"] * 10, "exact"),
    ([0, 1] * 15, "exact"),  # numbers in JSON are labels too
    ([f"New {c}" for c, _ in COUNTRIES[:30]], "normalized"),  # short, but all distinct: not labels
    ([f"The capital of {c} is {cap}, a city by the sea." for c, cap in COUNTRIES[:30]], "f1"),
    ([json.dumps({"capital": cap}) for _, cap in COUNTRIES[:30]], "json"),  # JSON held as text
    ([json.dumps({"capital": cap}) for _, cap in COUNTRIES[:29]] + ["unknown"], "normalized"),  # not all JSON
])
def test_the_metric_follows_the_outputs(tmp_path, answers, metric):
    data = write_jsonl(tmp_path / "d.jsonl", qa_rows(answers))
    drafted = scaffold_task(data, task_path=tmp_path / "task.yaml")
    assert drafted.metric == metric
    assert comment_above(drafted.text, "metric").startswith(f"metric: {metric},")
    load_dataset(load_task(written(drafted)))  # the metric suits the outputs as the run reads them


def test_a_split_field_is_used_as_it_is(tmp_path):
    rows = [{"question": f"q{i}", "answer": f"a{i}", "split": ["train", "Validation", "TEST"][i % 3]} for i in range(30)]
    drafted = scaffold_task(write_jsonl(tmp_path / "d.jsonl", rows), task_path=tmp_path / "task.yaml")
    data = yaml.safe_load(drafted.text)["data"]
    assert data["split_field"] == "split" and "split" not in data
    assert drafted.sizes == {"train": 10, "dev": 10, "test": 10}
    assert load_dataset(load_task(written(drafted))).sizes == drafted.sizes


def test_a_large_test_split_is_capped(tmp_path):
    drafted = scaffold_task(write_jsonl(tmp_path / "d.jsonl", split_rows(20, test=1200)), task_path=tmp_path / "t.yaml")
    assert yaml.safe_load(drafted.text)["data"]["max_test"] == 1000 and drafted.sizes["test"] == 1200
    assert len(load_dataset(load_task(written(drafted))).test) == 1000


@pytest.mark.parametrize(("train", "docs", "arms"), [
    (49, False, ["zero_shot", "few_shot"]),
    (50, False, ["zero_shot", "few_shot", "finetune"]),
    (10, True, ["zero_shot", "few_shot", "rag", "few_shot_rag"]),
    (50, True, ["zero_shot", "few_shot", "rag", "few_shot_rag", "adaptive_rag", "finetune", "finetune_rag"]),
])
def test_arms_follow_the_documents_and_the_train_split(tmp_path, train, docs, arms):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("Some facts.")
    (tmp_path / "data").mkdir()
    (tmp_path / "tasks").mkdir()
    data = write_jsonl(tmp_path / "data" / "d.jsonl", split_rows(train))
    drafted = scaffold_task(data, task_path=tmp_path / "tasks" / "task.yaml", docs=tmp_path / "docs" if docs else None)
    assert list(drafted.arms) == arms
    task = load_task(written(drafted))
    assert [a.label for a in task.arms] == arms
    check_inputs(task, RunOptions(runs_dir=tmp_path / "runs"))  # what a run checks before it starts holds
    if docs:
        assert task.knowledge is not None and (task.base_dir / task.knowledge.paths[0]).resolve() == tmp_path / "docs"
    else:
        assert task.knowledge is None and "--docs FOLDER" in drafted.text
    if train < 50:
        assert f"no finetune: {train} train examples, fewer than 50" in drafted.text


def test_a_tiny_train_split_shows_no_more_demonstrations_than_it_has(tmp_path):
    (tmp_path / "docs").mkdir()
    drafted = scaffold_task(write_jsonl(tmp_path / "d.jsonl", split_rows(2)), task_path=tmp_path / "task.yaml",
                            docs=tmp_path / "docs")
    task = load_task(written(drafted))
    assert {a.label: getattr(a, a.demos_field) for a in task.arms if a.demos_field} == {"few_shot": 2, "few_shot_rag": 2}
    check_inputs(task, RunOptions(runs_dir=tmp_path / "runs"))


def test_flags_name_the_fields(tmp_path):
    rows = [{"question": f"q{i}", "context": f"c{i}", "answer": f"a{i}", "category": "geo" if i % 2 else "art"}
            for i in range(30)]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    both = scaffold_task(data, task_path=tmp_path / "task.yaml", input_fields=["context", "question"], output="category")
    spec = yaml.safe_load(both.text)["data"]
    assert (spec["input"], spec["output"]) == (["context", "question"], "category") and both.metric == "exact"
    assert "'answer' (not an input)" in both.text
    # An input named like an output is not taken for the output.
    named = scaffold_task(data, task_path=tmp_path / "task.yaml", input_fields=["answer"])
    assert (named.input, named.output) == ("answer", "category")


@pytest.mark.slow
def test_init_then_run_end_to_end_against_the_loopback_server(tmp_path, server):
    rows = [{"question": f"What is the capital of {c}?", "answer": cap} for c, cap in COUNTRIES]
    write_jsonl(tmp_path / "capitals.jsonl", rows)
    runs = str(tmp_path / "runs")

    def tunewise(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tunewise.cli", *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)

    made = tunewise("init", "capitals.jsonl", "--out", "task/task.yaml")
    assert made.returncode == 0, made.stderr
    assert "metric normalized, arms zero_shot, few_shot" in made.stdout
    task = tmp_path / "task" / "task.yaml"
    refused = tunewise("run", "task/task.yaml", "--runs-dir", runs)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "model.uri" in refused.stderr
    task.write_text(with_model(task.read_text(), base_url=server.base_url))
    ran = tunewise("run", "task/task.yaml", "--runs-dir", runs, "--json")
    assert ran.returncode == 0, ran.stderr[-2000:]
    summary = json.loads(ran.stdout)
    scores = {arm["name"]: arm["score"] for arm in summary["arms"]}
    # The scripted model answers zero-shot in a sentence and with the bare capital once shown demonstrations: the
    # drafted metric (normalized) tells them apart, and the recommendation follows.
    assert scores["zero_shot"] == 0.0 and scores["few_shot"] >= 0.7
    assert summary["recommendation"]["arm"] == "few_shot"
    assert all(arm["errors"] == 0 for arm in summary["arms"])


def run_init(monkeypatch, capsys, cwd: Path, *args: str) -> tuple[int, str]:
    """`tunewise init ...` through the console entry point: its exit status and stderr."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["tunewise", "init", *args])
    with pytest.raises(SystemExit) as e:
        main()
    return e.value.code, capsys.readouterr().err


CHAT_ONLY = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})
BAD_INPUT = {
    # name: (file name, content or None for no file, extra args, the file the error names, its line, a phrase)
    "missing-file": ("d.jsonl", None, [], "d.jsonl", None, "data file not found"),
    "unsupported-extension": ("d.txt", "q,a\n", [], "d.txt", None, "unsupported data format '.txt'"),
    "empty-file": ("d.jsonl", "\n\n", [], "d.jsonl", None, "no examples in the data file"),
    "unparseable-row": ("d.jsonl", '{"question": "q", "answer": "a"}\n\n{"question": \n', [], "d.jsonl", 3,
                        "invalid JSON"),
    "csv-row-too-long": ("d.csv", "question,answer\nq1,a1\nq2,a2,extra\n", [], "d.csv", 3, "more cells than the header"),
    "no-such-input": ("d.jsonl", json.dumps({"question": "q", "answer": "a"}) + "\n", ["--input", "prompt"], "d.jsonl",
                      None, "--input 'prompt': no such field (the fields: question, answer)"),
    "no-such-output": ("d.jsonl", json.dumps({"question": "q", "answer": "a"}) + "\n", ["--output", "label"],
                       "d.jsonl", None, "--output 'label': no such field"),
    "input-is-output": ("d.jsonl", json.dumps({"question": "q", "answer": "a"}) + "\n",
                        ["--input", "answer", "--output", "answer"], "d.jsonl", None, "both --input and --output"),
    "missing-output-in-a-row": ("d.jsonl", "".join(json.dumps({"question": f"q{i}", "answer": f"a{i}"}) + "\n"
                                                   for i in range(5)) + '{"question": "q5"}\n',
                                ["--output", "answer"], "d.jsonl", 6, "missing field 'answer'"),
    "whole-conversations": ("d.jsonl", CHAT_ONLY + "\n", [], "d.jsonl", None, "holds whole conversations"),
    "no-test-examples": ("d.jsonl", json.dumps({"question": "q", "answer": "a", "split": "train"}) + "\n", [],
                         "d.jsonl", None, "no test examples after the split"),
    "missing-docs": ("d.jsonl", "".join(json.dumps({"question": f"q{i}", "answer": "a"}) + "\n" for i in range(20)),
                     ["--docs", "nowhere"], "nowhere", None, "documents not found"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, case):
    name, content, args, where, line, phrase = BAD_INPUT[case]
    if content is not None:
        (tmp_path / name).write_text(content)
    status, err = run_init(monkeypatch, capsys, tmp_path, name, *args)
    assert status == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    m = re.fullmatch(r"error: (?P<file>[^:]+)(?::(?P<line>\d+))?: (?P<what>.+)\n", err)
    assert m, err
    assert m["file"] == where and (int(m["line"]) if m["line"] else None) == line, err
    assert phrase in m["what"], err
    assert not (tmp_path / "task.yaml").exists()


def test_an_existing_task_file_is_kept_unless_forced_and_the_data_never_overwritten(tmp_path, monkeypatch, capsys):
    write_jsonl(tmp_path / "d.jsonl", qa_rows([f"a{i}" for i in range(30)]))
    (tmp_path / "task.yaml").write_text("mine\n")
    status, err = run_init(monkeypatch, capsys, tmp_path, "d.jsonl")
    assert (status, err) == (2, "error: task.yaml: exists already: overwrite it with --force\n")
    assert (tmp_path / "task.yaml").read_text() == "mine\n"
    status, err = run_init(monkeypatch, capsys, tmp_path, "d.jsonl", "--force")
    assert status in (0, None), err
    assert (tmp_path / "task.yaml").read_text() == scaffold_task("d.jsonl", task_path="task.yaml").text  # in tmp_path
    before = (tmp_path / "d.jsonl").read_bytes()
    status, err = run_init(monkeypatch, capsys, tmp_path, "d.jsonl", "--out", "d.jsonl", "--force")
    assert status == 2 and "is the data file" in err and (tmp_path / "d.jsonl").read_bytes() == before


def test_init_on_csv_imports_no_heavy_library(tmp_path):
    write_csv(tmp_path / "d.csv", [{"question": f"q{i}", "answer": f"a{i}"} for i in range(30)])
    heavy = ("torch", "transformers", "lancedb", "sentence_transformers", "pyarrow", "scipy", "openai")
    code = (
        "import sys\n"
        "from tunewise.cli import main\n"
        "sys.argv = ['tunewise', 'init', 'd.csv']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    print('EXIT', e.code)\n"
        f"print('HEAVY', [m for m in {heavy!r} if m in sys.modules])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in r.stdout and "EXIT 0" in r.stdout, r.stdout + r.stderr
    assert (tmp_path / "task.yaml").is_file()
