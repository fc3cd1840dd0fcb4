"""Whatever bytes the parsers and the run store are given, the answer is a valid result or one InputError.

Hypothesis writes task files, data files (JSONL, CSV, Parquet), manifests and results lines, as raw bytes and as
near misses of real ones (a value swapped for any JSON, a line cut, a key dropped), and drives the library in
process: load_task, load_dataset, check_arms, RunStore.open / results / latest, the summary and both reports of a
store, and the resume check. Anything but InputError is a failure, and so is a run's files changing under a read
or a refused resume. A few cases go through the real CLI: exit 2, one `error:` line, no traceback.

Sized to run in well under a minute on two cores: CASES below is the sum of every test's max_examples.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from constructed_run import ArmSpec, write_run
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tunewise.data import load_dataset
from tunewise.decide.summary import summary_of
from tunewise.errors import InputError
from tunewise.evaluation.experiment import RunOptions, check_arms, check_inputs
from tunewise.evaluation.manifest import fingerprint
from tunewise.evaluation.store import RunStore, list_runs
from tunewise.report.content import gather
from tunewise.report.html import render_html
from tunewise.report.markdown import render_markdown
from tunewise.taskfile import load_task

EXAMPLES = {"task": 1500, "task_bytes": 600, "data": 1000, "data_bytes": 500, "manifest": 1000, "results": 1000,
            "resume": 300, "cli": 12}
CASES = sum(EXAMPLES.values())


def sized(name: str) -> settings:
    """EXAMPLES[name] cases, no deadline (a case may wait on the disk), no example database left in the tree."""
    return settings(max_examples=EXAMPLES[name], deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

TASK = """\
name: prop
description: Answer briefly.
data:
  path: data.jsonl
  input: question
  output: answer
  split_field: split
metric: exact
model:
  uri: openai:m
  base_url: http://127.0.0.1:9/v1
  max_concurrency: 2
arms:
  - zero_shot
  - few_shot: {k: 2}
  - {arm: self_consistency, name: sc, k: 3}
requirements:
  min_score: 0.5
"""
DATA_ROWS = [{"question": f"q{i}", "answer": f"a{i}", "split": "train" if i % 2 else "test"} for i in range(8)]
DATA = "".join(json.dumps(r) + "\n" for r in DATA_ROWS)

# JSON of every kind, small: what a hand edit or a wrong tool could leave in a value.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12) | st.sampled_from(["\ud800", "a\udfff", "\ud83d\ude00"]),  # halves of surrogate pairs
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
# Text a YAML or CSV parser treats specially, mixed with anything.
TRICKY = st.lists(st.sampled_from([*"&*!|>-?:,[]{}#%@`'\"\\\n\t ~é\x00\ufeff", "!!int ", "<<", "&a ", "*a", "0x",
                                   "1e999", "null", "---", "..."]), max_size=8).map("".join)
SCALAR = st.one_of(TRICKY, st.text(max_size=10), JSON.map(json.dumps))


def only_input_errors(call: Any, what: str = "") -> Any:
    """`call()`'s value; an InputError is an answer too (None), anything else fails the test. `what` names the
    step in the statistics (`--hypothesis-show-statistics`), so a run shows how far the cases got."""
    try:
        value = call()
    except InputError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))  # one line
        event(f"{what}: InputError" if what else "InputError")
        return None
    if what:
        event(f"{what}: read")
    return value


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@st.composite
def near_task(draw: st.DrawFn) -> str:
    """The task file with one of its lines replaced, dropped, duplicated or given another value, or a key added."""
    lines = TASK.splitlines()
    i = draw(st.integers(0, len(lines) - 1))
    how = draw(st.sampled_from(["value", "drop", "twice", "insert", "line"]))
    if how == "value" and ":" in lines[i]:
        key = lines[i].split(":", 1)[0]
        lines[i] = f"{key}: {draw(SCALAR)}"
    elif how == "drop":
        del lines[i]
    elif how == "twice":
        lines.insert(i, lines[i])
    elif how == "insert":
        indent = " " * draw(st.sampled_from([0, 2, 4]))
        lines.insert(i, f"{indent}{draw(st.text(min_size=1, max_size=8))}: {draw(SCALAR)}")
    else:
        lines[i] = draw(TRICKY)
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("props")


def read_task(root: Path, text: bytes) -> None:
    """A task file through everything that reads it before a run: the task, its data, what its arms need."""
    (root / "task.yaml").write_bytes(text)
    task = only_input_errors(lambda: load_task(root / "task.yaml"), "task")
    if task is None:
        return
    dataset = only_input_errors(lambda: load_dataset(task), "data")
    if dataset is not None:
        only_input_errors(lambda: check_arms(task, dataset), "arms")


@sized("task")
@given(text=near_task())
def test_a_task_file_near_a_good_one_reads_or_is_one_input_error(folder: Path, text: str) -> None:
    (folder / "data.jsonl").write_text(DATA)
    read_task(folder, text.encode("utf-8", "surrogatepass"))


@sized("task_bytes")
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_a_task_file_of_any_bytes_reads_or_is_one_input_error(folder: Path, raw: bytes) -> None:
    (folder / "data.jsonl").write_text(DATA)
    read_task(folder, TASK.encode()[: len(raw) % 200] + raw)


@st.composite
def near_rows(draw: st.DrawFn) -> list[Any]:
    """The data rows with values swapped for any JSON, keys dropped or added, rows duplicated or not objects."""
    rows: list[Any] = [dict(r) for r in DATA_ROWS]
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(rows) - 1))
        how = draw(st.sampled_from(["value", "drop-key", "add-key", "twice", "not-object"]))
        row = rows[i]
        if not isinstance(row, dict):
            continue
        if how == "value":
            row[draw(st.sampled_from(["question", "answer", "split"]))] = draw(JSON)
        elif how == "drop-key" and row:
            del row[draw(st.sampled_from(sorted(row)))]
        elif how == "add-key":
            row[draw(st.text(max_size=6))] = draw(JSON)
        elif how == "twice":
            rows.insert(i, dict(row))
        else:
            rows[i] = draw(JSON)
    return rows


DATA_TASKS = {
    ".jsonl": TASK,
    ".csv": TASK.replace("data.jsonl", "data.csv"),
    ".parquet": TASK.replace("data.jsonl", "data.parquet"),
}


@sized("data")
@given(rows=near_rows(), metric=st.sampled_from(["exact", "json", "f1"]), with_id=st.booleans())
def test_a_data_file_near_a_good_one_loads_or_is_one_input_error(folder: Path, rows: list[Any], metric: str,
                                                                 with_id: bool) -> None:
    text = TASK.replace("metric: exact", f"metric: {metric}")
    if with_id:
        text = text.replace("  split_field: split", "  split_field: split\n  id: question")
    (folder / "task.yaml").write_text(text)
    (folder / "data.jsonl").write_text("".join(json.dumps(r, allow_nan=True) + "\n" for r in rows))
    task = load_task(folder / "task.yaml")
    dataset = only_input_errors(lambda: load_dataset(task), "data")
    if dataset is not None:
        only_input_errors(lambda: check_arms(task, dataset), "arms")


@sized("data_bytes")
@given(raw=st.binary(max_size=400), suffix=st.sampled_from(sorted(DATA_TASKS)), keep=st.integers(0, len(DATA)))
def test_a_data_file_of_any_bytes_loads_or_is_one_input_error(folder: Path, raw: bytes, suffix: str, keep: int) -> None:
    (folder / "task.yaml").write_text(DATA_TASKS[suffix])
    good = DATA.encode() if suffix == ".jsonl" else b"question,answer,split\nq1,a1,test\nq2,a2,train\n"
    (folder / f"data{suffix}").write_bytes(good[:keep] + raw if suffix != ".parquet" else raw)
    task = load_task(folder / "task.yaml")
    only_input_errors(lambda: load_dataset(task), "data")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> RunStore:
    """A complete run of two arms (one few_shot, whose answers record their demonstrations) to damage copies of."""
    store = write_run(tmp_path_factory.mktemp("recorded"), [
        ArmSpec("zero_shot", [1, 0, 1, 1, 0, 1]), ArmSpec("few_shot", [1, 1, 0, 1, 1, 1], arm_type="few_shot"),
    ], requirements={"min_score": 0.6})
    path = store.dir / "results.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for r in rows:
        if r["arm"] == "few_shot":
            r["meta"] = {"demos": ["t1", "t2"]}
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return store


def damaged_copy(recorded: RunStore, folder: Path, name: str, content: bytes) -> RunStore:
    target = folder / "runs" / recorded.run_id
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(recorded.dir, target)
    (target / name).write_bytes(content)
    return RunStore(target)


def read_store(store: RunStore, *, html: bool) -> None:
    """What `show`, `report`, `runs` and `compare` read of a run: each gives a value or one InputError, and
    the run's files stay as they were."""
    before = snapshot(store.dir)
    opened = only_input_errors(lambda: RunStore.open(store.dir.parent, store.run_id))
    if opened is not None:
        only_input_errors(opened.latest, "results")
        summary = only_input_errors(lambda: summary_of(opened), "summary")
        if summary is not None:
            report = gather(summary, opened.manifest, opened.latest().values())
            render_markdown(report)
            if html:
                render_html(report)
    list_runs(store.dir.parent)
    assert snapshot(store.dir) == before


@st.composite
def near_json(draw: st.DrawFn, original: Any, depth: int = 0) -> Any:
    """`original` with a few of its values (at any depth) swapped for any JSON, dropped, or kept."""
    if isinstance(original, dict) and original and depth < 3:
        out = dict(original)
        for _ in range(draw(st.integers(0, 2))):
            key = draw(st.sampled_from(sorted(out))) if out else None
            how = draw(st.sampled_from(["swap", "drop", "deeper"]))
            if key is None:
                break
            if how == "swap":
                out[key] = draw(JSON)
            elif how == "drop":
                del out[key]
            else:
                out[key] = draw(near_json(out[key], depth + 1))
        return out
    if isinstance(original, list) and original and depth < 3:
        i = draw(st.integers(0, len(original) - 1))
        return [*original[:i], draw(near_json(original[i], depth + 1)), *original[i + 1:]]
    return draw(st.one_of(st.just(original), JSON))


def cut_or_bytes(good: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=200),
        st.tuples(st.integers(0, len(good)), st.binary(max_size=20)).map(lambda c: good[: c[0]] + c[1]),
    )


@sized("manifest")
@given(data=st.data())
def test_a_manifest_of_any_bytes_is_read_or_one_input_error_and_changes_nothing(folder: Path, recorded: RunStore,
                                                                                 data: st.DataObject) -> None:
    good = (recorded.dir / "manifest.json").read_bytes()
    near = data.draw(near_json(json.loads(good)).map(lambda m: json.dumps(m, allow_nan=True).encode()))
    content = data.draw(st.one_of(st.just(near), cut_or_bytes(good)))
    read_store(damaged_copy(recorded, folder, "manifest.json", content), html=data.draw(st.booleans()))


@sized("results")
@given(data=st.data())
def test_results_of_any_bytes_are_read_or_one_input_error_and_change_nothing(folder: Path, recorded: RunStore,
                                                                              data: st.DataObject) -> None:
    lines = (recorded.dir / "results.jsonl").read_bytes().split(b"\n")[:-1]
    i = data.draw(st.integers(0, len(lines) - 1))
    near = data.draw(near_json(json.loads(lines[i])).map(lambda r: json.dumps(r, allow_nan=True).encode()))
    lines[i] = data.draw(st.one_of(st.just(near), cut_or_bytes(lines[i])))
    torn = data.draw(st.sampled_from([b"", b'{"arm": "zero_sh']))
    read_store(damaged_copy(recorded, folder, "results.jsonl", b"\n".join(lines) + b"\n" + torn),
               html=data.draw(st.booleans()))


@pytest.fixture(scope="module")
def resumable(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunStore]:
    """A task and a complete run of it whose fingerprint matches, so a resume gets as far as the store."""
    root = tmp_path_factory.mktemp("resumable")
    (root / "data.jsonl").write_text(DATA)
    (root / "task.yaml").write_text(TASK)
    task = load_task(root / "task.yaml")
    store = write_run(root / "runs", [ArmSpec("zero_shot", [1, 0, 1, 1]), ArmSpec("few_shot", [1, 1, 0, 1],
                                                                                   arm_type="few_shot"),
                                      ArmSpec("sc", [0, 1, 1, 1], arm_type="self_consistency")])
    store.update_manifest(task_fingerprint=fingerprint(task))
    return root, store


@sized("resume")
@given(data=st.data(), name=st.sampled_from(["manifest.json", "results.jsonl"]))
def test_a_resume_of_a_damaged_run_is_refused_in_one_line_and_changes_nothing(
    folder: Path, resumable: tuple[Path, RunStore], data: st.DataObject, name: str,
) -> None:
    root, store = resumable
    good = (store.dir / name).read_bytes()
    content = data.draw(cut_or_bytes(good))
    copy = damaged_copy(store, folder, name, content)
    before = snapshot(copy.dir)
    only_input_errors(lambda: check_inputs(root / "task.yaml", RunOptions(runs_dir=copy.dir.parent,
                                                                         resume=copy.run_id)), "resume")
    assert snapshot(copy.dir) == before


@sized("cli")
@given(text=near_task())
def test_the_cli_answers_a_task_file_near_a_good_one_with_exit_0_or_2_and_at_most_one_line(folder: Path,
                                                                                         text: str) -> None:
    root = folder / "cli"
    root.mkdir(exist_ok=True)
    (root / "data.jsonl").write_text(DATA)
    (root / "task.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEWISE_")}
    # `finetune export` reads the task like `run` and calls no model: a good file exits 0, a bad one 2.
    proc = subprocess.run([sys.executable, "-m", "tunewise.cli", "finetune", "export", "task.yaml", "--out", "out.jsonl"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 2), proc.stderr
    if proc.returncode == 2:
        assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("error: "), proc.stderr


def test_the_good_files_are_good(folder: Path) -> None:
    """The near misses above start from files that read: what they find is the damage, not the start."""
    (folder / "data.jsonl").write_text(DATA)
    (folder / "task.yaml").write_text(TASK)
    task = load_task(folder / "task.yaml")
    check_arms(task, load_dataset(task))
    assert yaml.safe_load(TASK)["arms"][1] == {"few_shot": {"k": 2}}
    print(f"hypothesis cases in this module: {CASES}")
