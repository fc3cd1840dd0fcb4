"""Examples from JSONL, CSV and Parquet, rendered inputs, and deterministic splits."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import pytest

from tunewise.data import Dataset, Example, hash_split, load_dataset
from tunewise.errors import InputError
from tunewise.taskfile import load_task


def task_yaml(path: str, *, input: str = "question", data_extra: str = "", metric: str = "exact") -> str:
    return (
        "name: data_test\n"
        "data:\n"
        f"  path: {path}\n"
        f"  input: {input}\n"
        "  output: answer\n"
        f"{data_extra}"
        f"metric: {metric}\n"
        "model: openai:m\n"
        "arms: [zero_shot]\n"
    )


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)


def load(tmp_path: Path, data_file: str, rows: list[dict[str, Any]] | None = None, **kw: str) -> Dataset:
    path = tmp_path / data_file
    if rows is not None:
        {".jsonl": write_jsonl, ".csv": write_csv, ".parquet": write_parquet}[path.suffix](path, rows)
    task_path = tmp_path / f"task-{path.stem}.yaml"
    task_path.write_text(task_yaml(data_file, **kw), encoding="utf-8")
    return load_dataset(load_task(task_path))


def everything(ds: Dataset) -> list[Example]:
    return [*ds.train, *ds.dev, *ds.test]


def by_id(ds: Dataset) -> dict[str, Example]:
    return {e.id: e for e in everything(ds)}


def qa_rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(start, start + n)]


# ---- formats ------------------------------------------------------------------------------


def test_jsonl_csv_parquet_give_the_same_examples(tmp_path: Path) -> None:
    rows = [
        {"question": "Capital of France?", "context": "Paris is the capital, of course.", "answer": "Paris"},
        {"question": "Café, naïve — unicode?", "context": 'quotes " and, commas', "answer": "yes"},
        {"question": "Two plus two", "context": "arithmetic", "answer": "4"},
    ] + [{"question": f"q{i}", "context": f"c{i}", "answer": f"a{i}"} for i in range(30)]
    kw = {"input": "[question, context]"}
    results = [load(tmp_path, name, rows, **kw) for name in ("d.jsonl", "d.csv", "d.parquet")]
    as_tuples = [[(e.id, e.input, e.target, e.split) for e in everything(ds)] for ds in results]
    assert len(as_tuples[0]) == len(rows)
    assert as_tuples[0] == as_tuples[1] == as_tuples[2]
    assert results[0].sizes == results[1].sizes == results[2].sizes
    ex = by_id(results[2])
    first = next(e for e in ex.values() if e.target == "Paris")
    assert first.input == "question: Capital of France?\ncontext: Paris is the capital, of course."


def test_non_string_values_are_rendered_the_same_in_every_format(tmp_path: Path) -> None:
    jsonl = [{"question": i, "answer": i * 2} for i in range(12)]
    csv_rows = [{"question": str(i), "answer": str(i * 2)} for i in range(12)]
    a = load(tmp_path, "n.jsonl", jsonl)
    b = load(tmp_path, "n.csv", csv_rows)
    c = load(tmp_path, "n.parquet", jsonl)
    assert by_id(a).keys() == by_id(b).keys() == by_id(c).keys()
    assert sorted((e.input, e.target) for e in everything(a)) == sorted((str(i), str(2 * i)) for i in range(12))


def test_jsonl_skips_blank_lines_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + b'{"question": "q0", "answer": "a0"}\n\n  \n{"question": "q1", "answer": "a1"}\r\n'
    )
    ds = load(tmp_path, "b.jsonl", None, data_extra="  split: {train: 0.0, dev: 0.0, test: 1.0}\n")
    assert [(e.input, e.target) for e in ds.test] == [("q0", "a0"), ("q1", "a1")]


def test_csv_quoted_multiline_cell_keeps_its_newline(tmp_path: Path) -> None:
    rows = [{"question": "line one\nline two", "answer": "a"}, {"question": "q", "answer": "b"}]
    ds = load(tmp_path, "m.csv", rows, data_extra="  split: {train: 0.0, dev: 0.0, test: 1.0}\n")
    assert [e.input for e in ds.test] == ["line one\nline two", "q"]


def test_jsonl_value_with_unicode_line_separator(tmp_path: Path) -> None:
    rows = [{"question": "first\u2028second", "answer": "a"}, {"question": "next\x85line", "answer": "b"}]
    ds = load(tmp_path, "u.jsonl", rows, data_extra="  split: {train: 0.0, dev: 0.0, test: 1.0}\n")
    assert [e.input for e in ds.test] == ["first\u2028second", "next\x85line"]


# ---- rendering ------------------------------------------------------------------------------


def test_multi_field_input_as_field_value_lines(tmp_path: Path) -> None:
    rows = [{"question": "Who?", "context": "Ada wrote it.", "extra": "ignored", "answer": "Ada"}]
    ds = load(tmp_path, "f.jsonl", rows, input="[context, question]",
              data_extra="  split: {train: 0.0, dev: 0.0, test: 1.0}\n")
    (ex,) = ds.test
    assert ex.input == "context: Ada wrote it.\nquestion: Who?"  # in the order the task lists them
    assert ex.target == "Ada"
    assert ex.fields["extra"] == "ignored"


def test_single_field_input_is_the_bare_value(tmp_path: Path) -> None:
    rows = [{"question": "Who?", "answer": "Ada"}, {"question": {"nested": [1, 2]}, "answer": {"b": 1, "a": 2}}]
    ds = load(tmp_path, "s.jsonl", rows, data_extra="  split: {train: 0.0, dev: 0.0, test: 1.0}\n", metric="json")
    assert [(e.input, e.target) for e in ds.test] == [("Who?", "Ada"), ('{"nested": [1, 2]}', '{"a": 2, "b": 1}')]


@pytest.mark.parametrize("metric", ["exact", "normalized", "f1", "contains", "{name: regex, pattern: '(.*)'}"])
@pytest.mark.parametrize("answer, kind", [({"a": 1}, "an object"), ([1, 2], "a list")])
def test_an_object_answer_under_a_text_metric_is_refused_at_its_line(tmp_path: Path, metric: str, answer: object,
                                                                      kind: str) -> None:
    rows = [*qa_rows(2), {"question": "q", "answer": answer}, *qa_rows(2, start=5)]
    with pytest.raises(InputError) as info:
        load(tmp_path, "o.jsonl", rows, metric=metric)
    assert info.value.line == 3
    name = metric.split(":")[1].split(",")[0].strip() if "{" in metric else metric
    assert info.value.message == (f"the output 'answer' is {kind}, but metric '{name}' compares text: "
                                  "use `metric: json`, or give the answer as a string")


def test_an_object_answer_reaches_a_python_metric_as_json_text(tmp_path: Path) -> None:
    (tmp_path / "my_metric.py").write_text("def score(p, t):\n    return float(p == t)\n")
    rows = [{"question": "q", "answer": {"b": 1, "a": 2}}]
    ds = load(tmp_path, "p.jsonl", rows, data_extra="  split: {train: 0.0, dev: 0.0, test: 1.0}\n",
              metric="python:my_metric:score")
    assert ds.test[0].target == '{"a": 2, "b": 1}'


def test_values_json_has_no_form_for_are_text(tmp_path: Path) -> None:
    import datetime

    rows = [{"question": datetime.date(2024, 5, 1), "answer": datetime.datetime(2024, 5, 1, 12, 30)}]
    ds = load(tmp_path, "t.parquet", rows, data_extra="  split: {train: 0.0, dev: 0.0, test: 1.0}\n")
    assert (ds.test[0].input, ds.test[0].target) == ('"2024-05-01"', '"2024-05-01 12:30:00"')


@pytest.mark.parametrize("line, phrase", [
    ('{"question": ' + "[" * 100_000 + "]" * 100_000 + ', "answer": "a"}', "nested too deeply"),
    ('{"question": "q", "answer": ' + "7" * 5000 + "}", "invalid JSON: Exceeds the limit"),
    ('{"question": "q\\ud800", "answer": "a"}', "escape that is half of a surrogate pair"),
])
def test_json_lines_python_cannot_read_are_errors_at_their_line(tmp_path: Path, line: str, phrase: str) -> None:
    (tmp_path / "d.jsonl").write_text('{"question": "q", "answer": "a"}\n' + line + "\n")
    with pytest.raises(InputError) as info:
        load(tmp_path, "d.jsonl")
    assert info.value.line == 2
    assert phrase in info.value.message


def test_a_template_that_fails_on_a_row_is_an_error_at_its_line(tmp_path: Path) -> None:
    rows = [{"question": "q", "n": 2, "answer": "a"}, {"question": "q", "n": "two", "answer": "a"}]
    with pytest.raises(InputError) as info:
        load(tmp_path, "t.jsonl", rows, data_extra='  template: "{{ question }} {{ n + 1 }}"\n')
    assert info.value.line == 2
    assert info.value.message.startswith("data.template: TypeError:")


def test_jinja2_template(tmp_path: Path) -> None:
    rows = [{"question": "Who?", "context": "Ada wrote it.", "tags": ["x", "y"], "answer": "Ada"}]
    template = '"Context: {{ context }}\\nQ: {{ question | upper }} ({{ tags | join(\',\') }})"'
    ds = load(tmp_path, "t.jsonl", rows, input="[question, context]",
              data_extra=f"  template: {template}\n  split: {{train: 0.0, dev: 0.0, test: 1.0}}\n")
    (ex,) = ds.test
    assert ex.input == "Context: Ada wrote it.\nQ: WHO? (x,y)"


# ---- splits -----------------------------------------------------------------------------------


def test_hash_split_is_a_pure_function_of_id_and_seed() -> None:
    fractions = (0.5, 0.1, 0.4)
    ids = [f"id{i}" for i in range(300)]
    first = [hash_split(i, fractions, 0) for i in ids]
    assert first == [hash_split(i, fractions, 0) for i in ids]
    assert set(first) == {"train", "dev", "test"}
    assert first != [hash_split(i, fractions, 1) for i in ids]  # the seed matters
    assert all(hash_split(i, (0.0, 0.0, 1.0), 0) == "test" for i in ids)
    assert all(hash_split(i, (1.0, 0.0, 0.0), 0) == "train" for i in ids)


def test_split_is_deterministic_and_matches_fractions(tmp_path: Path) -> None:
    rows = qa_rows(2000)
    a = load(tmp_path, "big.jsonl", rows)
    b = load(tmp_path, "big.jsonl", None)
    assert [(e.id, e.split) for e in everything(a)] == [(e.id, e.split) for e in everything(b)]
    assert sum(a.sizes.values()) == 2000
    assert abs(a.sizes["train"] / 2000 - 0.5) < 0.04
    assert abs(a.sizes["dev"] / 2000 - 0.1) < 0.03
    assert abs(a.sizes["test"] / 2000 - 0.4) < 0.04
    assert all(e.split == name for name in ("train", "dev", "test") for e in getattr(a, name))
    custom = load(tmp_path, "big.jsonl", None, data_extra="  split: {train: 0.2, dev: 0.0, test: 0.8}\n")
    assert custom.sizes["dev"] == 0
    assert abs(custom.sizes["test"] / 2000 - 0.8) < 0.04


def test_split_seed_moves_examples(tmp_path: Path) -> None:
    rows = qa_rows(200)
    a = by_id(load(tmp_path, "s.jsonl", rows))
    b = by_id(load(tmp_path, "s.jsonl", None, data_extra="  split: {seed: 7}\n"))
    assert a.keys() == b.keys()
    assert any(a[i].split != b[i].split for i in a)


def test_adding_examples_never_moves_old_ones(tmp_path: Path) -> None:
    old_rows = qa_rows(1000)
    before = by_id(load(tmp_path, "grow.jsonl", old_rows))
    new_rows = old_rows + qa_rows(500, start=1000)
    random.Random(3).shuffle(new_rows)
    after = by_id(load(tmp_path, "grow.jsonl", new_rows))
    assert len(after) == 1500
    assert before.keys() <= after.keys()
    assert {i: e.split for i, e in before.items()} == {i: after[i].split for i in before}


def test_ids_stable_across_reordering(tmp_path: Path) -> None:
    rows = qa_rows(50)
    a = by_id(load(tmp_path, "o.jsonl", rows))
    b = by_id(load(tmp_path, "o.jsonl", list(reversed(rows))))
    assert len(a) == 50
    assert {i: (e.input, e.target, e.split) for i, e in a.items()} == {
        i: (e.input, e.target, e.split) for i, e in b.items()
    }


def test_duplicate_rows_get_distinct_ids(tmp_path: Path) -> None:
    rows = [{"question": "same", "answer": "same"}] * 3 + [{"question": "other", "answer": "x"}]
    ds = load(tmp_path, "dup.jsonl", rows, data_extra="  split: {train: 0.0, dev: 0.0, test: 1.0}\n")
    ids = [e.id for e in ds.test]
    assert len(ids) == 4 and len(set(ids)) == 4
    # a different target makes a different example
    rows2 = [{"question": "same", "answer": "same"}, {"question": "same", "answer": "other"}]
    ds2 = load(tmp_path, "dup2.jsonl", rows2, data_extra="  split: {train: 0.0, dev: 0.0, test: 1.0}\n")
    assert len({e.id for e in ds2.test}) == 2


def test_id_field_is_used_when_given(tmp_path: Path) -> None:
    rows = [{"id": f"ex-{i}", "question": "same", "answer": "same"} for i in range(5)] + [
        {"id": 17, "question": "q", "answer": "a"}
    ]
    ds = load(tmp_path, "ids.jsonl", rows, data_extra="  id: id\n  split: {train: 0.0, dev: 0.0, test: 1.0}\n")
    assert [e.id for e in ds.test] == ["ex-0", "ex-1", "ex-2", "ex-3", "ex-4", "17"]


def test_explicit_split_column_with_aliases(tmp_path: Path) -> None:
    labels = ["train", "TRAIN", "dev", "val", "validation", "Valid", " test ", "Test", "test"]
    rows = [{"question": f"q{i}", "answer": f"a{i}", "part": s} for i, s in enumerate(labels)]
    for name in ("sp.jsonl", "sp.csv"):
        ds = load(tmp_path, name, rows, data_extra="  split_field: part\n")
        assert [e.input for e in ds.train] == ["q0", "q1"]
        assert [e.input for e in ds.dev] == ["q2", "q3", "q4", "q5"]
        assert [e.input for e in ds.test] == ["q6", "q7", "q8"]
        assert {e.split for e in ds.dev} == {"dev"}


def test_max_test_caps_the_test_split_only(tmp_path: Path) -> None:
    rows = qa_rows(300)
    full = load(tmp_path, "cap.jsonl", rows)
    capped = load(tmp_path, "cap.jsonl", None, data_extra="  max_test: 7\n")
    assert full.sizes["test"] > 7
    assert len(capped.test) == 7
    assert [e.id for e in capped.test] == [e.id for e in full.test][:7]
    assert [e.id for e in capped.train] == [e.id for e in full.train]
    assert [e.id for e in capped.dev] == [e.id for e in full.dev]
    big = load(tmp_path, "cap.jsonl", None, data_extra="  max_test: 100000\n")
    assert [e.id for e in big.test] == [e.id for e in full.test]


# ---- conversations ------------------------------------------------------------------------


def chat(*turns: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": role, "content": content} for role, content in turns]


def test_a_conversation_field_gives_its_last_user_turn_as_input_and_the_rest_as_history(tmp_path: Path) -> None:
    rows = [{"messages": chat(("system", "Be brief."), ("user", "Lund is the port."), ("assistant", "Noted."),
                              ("user", "Which port?")), "answer": "Lund", "stale_answers": ["Kemi", 3]},
            {"messages": [1, 2], "answer": "x"}]
    ds = load(tmp_path, "c.jsonl", rows, input="messages", data_extra="  split: {train: 0.0, dev: 0.0, test: 1.0}\n")
    first, listed = ds.test
    assert first.input == "Which port?" and first.query.input == "Which port?"
    assert [t["role"] for t in first.history] == ["system", "user", "assistant"]
    assert first.query.history == first.history
    assert first.stale_answers == ("Kemi", "3") and "stale_answers" not in first.fields
    assert listed.input == "[1, 2]" and listed.history == ()  # a list that is not turns stays a value


def test_conversations_differing_before_the_question_get_different_ids(tmp_path: Path) -> None:
    rows = [{"messages": chat(("user", f"Port {i}."), ("user", "Which port?")), "answer": str(i)} for i in range(2)]
    ds = load(tmp_path, "i.jsonl", rows, input="messages", data_extra="  split: {train: 0.0, dev: 0.0, test: 1.0}\n")
    a, b = ds.test
    assert a.input == b.input and a.id != b.id and "-" not in a.id + b.id


@pytest.mark.parametrize("turns, phrase", [
    ([{"role": "user", "content": "q"}, {"role": "tool", "content": "x"}], "turn 1: each turn must be"),
    ([{"role": "user", "content": 3}], "turn 0: each turn must be"),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "must end with the user turn"),
])
def test_a_malformed_conversation_is_an_error_at_its_line(tmp_path: Path, turns: list, phrase: str) -> None:
    rows = [*qa_rows(1), {"question": turns, "answer": "a"}]
    with pytest.raises(InputError) as info:
        load(tmp_path, "m.jsonl", rows)
    assert info.value.line == 2 and phrase in info.value.message
