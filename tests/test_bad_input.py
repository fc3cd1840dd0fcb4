"""The bad-input contract, end to end through the real CLI.

Bad input exits with status 2 and prints exactly one line on stderr,
`error: <file>[:<line>]: <what is wrong>`, never a traceback, and before any model call
(the model below points at a closed port, so a call would be an error of a different kind).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_yaml_lines import BILLION_LAUGHS

# Line numbers of BASE (they are what the cases below check):
#  1 name  2 data  3 path  4 input  5 output  6 metric  7 model  8 uri  9 base_url
# 10 max_concurrency  11 arms  12 - zero_shot
BASE = """\
name: bad
data:
  path: data.jsonl
  input: question
  output: answer
metric: exact
model:
  uri: openai:m
  base_url: http://127.0.0.1:9/v1
  max_concurrency: 2
arms:
  - zero_shot
"""
assert BASE.splitlines()[9].strip() == "max_concurrency: 2"


def rows_jsonl(n: int = 20, **extra: object) -> str:
    return "".join(json.dumps({"question": f"q{i}", "answer": f"a{i}", **extra}) + "\n" for i in range(n))


GOOD_DATA = rows_jsonl()


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


ANY_LINE = object()  # the case does not pin the line


@dataclass(frozen=True)
class Link:
    """A symbolic link to `target` (as written: relative to the link's folder)."""

    target: str


@dataclass
class Case:
    task: str | bytes | None  # None: no task file at all
    where: str  # the file the error must name
    line: int | set[int] | None | object  # None: no line in the message; a set: any of these
    phrase: str  # a key phrase of the message
    files: dict[str, str | bytes | Link] = field(default_factory=lambda: {"data.jsonl": GOOD_DATA}, repr=False)


def with_data(name: str, content: str | bytes) -> dict[str, str | bytes | Link]:
    return {name: content}


def split_rows(train: int, test: int) -> str:
    """`train` train and `test` test examples, each with its own input."""
    return "".join(json.dumps({"question": f"{split}{i}", "answer": f"a{i}", "split": split}) + "\n"
                   for split, n in (("train", train), ("test", test)) for i in range(n))


SPLIT_FIELD = edit("  output: answer", "  output: answer\n  split_field: split")
KNOWLEDGE = "knowledge:\n  paths: [docs]\n"


CASES: dict[str, Case] = {
    # --- the task file itself -------------------------------------------------------------
    "task-missing": Case(None, "task.yaml", None, "not found"),
    "yaml-syntax": Case(edit("  input: question", "  input: question: oops"), "task.yaml", 4, "invalid YAML"),
    "task-not-mapping": Case("- zero_shot\n- few_shot\n", "task.yaml", 1, "must be a mapping"),
    "task-non-utf8": Case(b"name: bad\ndescription: caf\xe9 au lait\n" + BASE.split("\n", 1)[1].encode(),
                          "task.yaml", 2, "UTF-8"),
    "duplicate-yaml-key": Case(BASE + "name: again\n", "task.yaml", 13, "duplicate key 'name'"),
    "missing-metric": Case(edit("metric: exact\n", ""), "task.yaml", 1, "missing required field 'metric'"),
    "missing-data-output": Case(edit("  output: answer\n", ""), "task.yaml", 2, "missing required field 'output'"),
    "wrong-type-max-concurrency": Case(
        edit("max_concurrency: 2", 'max_concurrency: "lots"'), "task.yaml", 10, "model.max_concurrency"
    ),
    "unknown-field-instructons": Case(BASE + "instructons: Answer briefly.\n", "task.yaml", 13,
                                      "unknown field 'instructons'"),
    "unknown-metric": Case(edit("metric: exact", "metric: accuracy"), "task.yaml", 6, "unknown metric 'accuracy'"),
    "unknown-arm": Case(edit("  - zero_shot", "  - zero_shot\n  - prompt_magic"), "task.yaml", 13, "unknown arm 'prompt_magic'"),
    "few-shot-k-zero": Case(
        edit("  - zero_shot", "  - zero_shot\n  - few_shot:\n      k: 0"), "task.yaml", 14, "arms[1].k"
    ),
    "few-shot-k-three": Case(
        edit("  - zero_shot", "  - zero_shot\n  - {arm: few_shot, name: fs, k: three}"), "task.yaml", 13,
        "arms[1].k: Input should be a valid integer",
    ),
    "duplicate-arm-names": Case(
        edit("  - zero_shot", "  - few_shot: {k: 2}\n  - few_shot: {k: 4}"), "task.yaml", ANY_LINE,
        "two arms are named 'few_shot'",
    ),
    "bad-model-uri-scheme": Case(edit("uri: openai:m", "uri: ollama:llama3"), "task.yaml", 8, "model uri must be"),
    "split-not-summing-to-1": Case(
        edit("  output: answer", "  output: answer\n  split: {train: 0.5, dev: 0.3, test: 0.4}"), "task.yaml", 6,
        "data.split: train + dev + test must sum to 1",
    ),
    "requirement-out-of-range": Case(
        BASE + "requirements:\n  min_score: 80\n", "task.yaml", 14, "requirements.min_score"
    ),
    "regex-bad-pattern": Case(
        # the line of `metric:` (6) or of `pattern:` (8) both name the right place
        edit("metric: exact", "metric:\n  name: regex\n  pattern: 'answer: (\\d+'"), "task.yaml", {6, 8},
        "bad regex pattern",
    ),
    "python-metric-not-importable": Case(
        edit("metric: exact", "metric: python:tw_no_such_module_xyz:score"), "task.yaml", 6,
        "cannot import metric module 'tw_no_such_module_xyz'",
    ),
    "python-metric-no-function": Case(
        edit("metric: exact", "metric: python:tw_metric_nofn:score"), "task.yaml", 6, "no function 'score'",
        files={"data.jsonl": GOOD_DATA, "tw_metric_nofn.py": "def other(p, t):\n    return 1.0\n"},
    ),
    # --- the data file -----------------------------------------------------------------------
    "data-missing": Case(BASE, "data.jsonl", None, "not found", files={}),
    "data-unsupported-xlsx": Case(
        edit("path: data.jsonl", "path: data.xlsx"), "data.xlsx", None, "unsupported data format '.xlsx'",
        files=with_data("data.xlsx", b"PK\x03\x04 not really a workbook"),
    ),
    "data-jsonl-bad-json-line-7": Case(
        BASE, "data.jsonl", 7, "invalid JSON",
        # line 3 is blank: blank lines are skipped but still counted
        files=with_data("data.jsonl", rows_jsonl(2) + "\n" + rows_jsonl(3) + '{"question": "q", "answer": \n'
                        + rows_jsonl(3)),
    ),
    "data-line-not-object": Case(
        BASE, "data.jsonl", 2, "must be a JSON object", files=with_data("data.jsonl", rows_jsonl(1) + "[1, 2]\n")
    ),
    "data-row-missing-output": Case(
        BASE, "data.jsonl", 3, "missing field 'answer'",
        files=with_data("data.jsonl", rows_jsonl(2) + '{"question": "q9"}\n' + rows_jsonl(2)),
    ),
    "data-empty": Case(BASE, "data.jsonl", None, "no examples", files=with_data("data.jsonl", "")),
    "data-non-utf8": Case(
        BASE, "data.jsonl", 4, "UTF-8",
        files=with_data("data.jsonl", rows_jsonl(3).encode() + b'{"question": "caf\xe9", "answer": "x"}\n'),
    ),
    "csv-row-longer-than-header": Case(
        edit("path: data.jsonl", "path: data.csv"), "data.csv", 3, "more cells than the header",
        files=with_data("data.csv", "question,answer\nq1,a1\nq2,a2,surplus\nq3,a3\n"),
    ),
    "parquet-unreadable": Case(
        edit("path: data.jsonl", "path: data.parquet"), "data.parquet", None, "Parquet",
        files=with_data("data.parquet", b"this is not parquet at all"),
    ),
    "bad-split-value": Case(
        edit("  output: answer", "  output: answer\n  split_field: split"), "data.jsonl", 2, "split 'training'",
        files=with_data("data.jsonl", rows_jsonl(1, split="train") + rows_jsonl(1, split="training")),
    ),
    "all-examples-in-train": Case(
        edit("  output: answer", "  output: answer\n  split_field: split"), "data.jsonl", None, "no test examples",
        files=with_data("data.jsonl", rows_jsonl(10, split="train")),
    ),
    "duplicate-ids": Case(
        edit("  output: answer", "  output: answer\n  id: id"), "data.jsonl", 4,
        "duplicate id 'e2' (first on line 2)",
        files=with_data("data.jsonl", "".join(
            json.dumps({"id": i, "question": "q", "answer": "a"}) + "\n" for i in ("e1", "e2", "e3", "e2", "e4")
        )),
    ),
    "template-missing-field": Case(
        edit("  output: answer", '  output: answer\n  template: "Q: {{ questoin }}"'), "data.jsonl", 1,
        "'questoin' is undefined",
    ),
    "typo-arm-instead-of-arms": Case(edit("arms:", "arm:"), "task.yaml", 11, "unknown field 'arm'"),
    "duplicate-arm-names-line": Case(edit("  - zero_shot", "  - few_shot: {k: 2}\n  - few_shot: {k: 4}"), "task.yaml", 13,
             "two arms are named 'few_shot'"),
    "template-syntax-error": Case(edit("  output: answer", '  output: answer\n  template: "Q: {{ question "'), "task.yaml", 6,
             "invalid Jinja2 template"),
    # --- inputs that could hurt a run (issue 14) ------------------------------------------------
    # 342 bytes whose aliases expand to 9**9 strings: refused at a line that uses them, at once
    "yaml-alias-bomb": Case(BILLION_LAUGHS + BASE, "task.yaml", set(range(2, 10)), "YAML aliases here expand"),
    # a prompt would show fewer demonstrations than asked: refused at the line of `k` (15) / of the arm (14)
    "few-shot-k-more-than-train": Case(
        SPLIT_FIELD.replace("  - zero_shot", "  - zero_shot\n  - few_shot:\n      k: 8"), "task.yaml", 15,
        "arm 'few_shot': k 8 is more than the 5 train examples", files=with_data("data.jsonl", split_rows(5, 5)),
    ),
    "few-shot-rag-shots-more-than-train": Case(
        SPLIT_FIELD.replace("  - zero_shot", "  - zero_shot\n  - {arm: few_shot_rag, shots: 6}") + KNOWLEDGE,
        "task.yaml", 14, "arm 'few_shot_rag': shots 6 is more than the 5 train examples",
        files={"data.jsonl": split_rows(5, 5), "docs/a.md": "A document."},
    ),
    "hf-model-folder-missing": Case(edit("uri: openai:m", "uri: hf:./missing-folder"), "task.yaml", 8,
                                    "no such model folder"),
    "hf-model-folder-inside-a-folder-that-is-there": Case(
        edit("uri: openai:m", "uri: hf:models/mine"), "task.yaml", 8, "no such model folder",
        files={"data.jsonl": GOOD_DATA, "models/README.txt": "the models live here"},
    ),
    "lab-world-missing": Case(edit("uri: openai:m", "uri: lab:no-such-world"), "task.yaml", 8,
                              "no such folder; make one with `tunewise lab world --out no-such-world`"),
    "knowledge-symlink-loop": Case(
        edit("  - zero_shot", "  - rag") + KNOWLEDGE, "docs/sub/up", None, "symlink loop (the link leads back to",
        files={"data.jsonl": GOOD_DATA, "docs/a.md": "A document.", "docs/sub/up": Link("..")},
    ),
    "data-output-object-under-text-metric": Case(
        BASE, "data.jsonl", 3, "the output 'answer' is an object, but metric 'exact' compares text: use `metric: json`",
        files=with_data("data.jsonl", rows_jsonl(2) + json.dumps({"question": "qx", "answer": {"a": 1}}) + "\n"
                        + rows_jsonl(3)),
    ),
}



def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEWISE_")}
    env["OPENAI_API_KEY"] = "sk-test-not-used"
    env["COLUMNS"] = "200"  # so `tunewise runs` does not wrap run ids
    return subprocess.run(
        [sys.executable, "-m", "tunewise.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def write_case(case: Case, root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    task_path = root / "task.yaml"
    if case.task is not None:
        if isinstance(case.task, bytes):
            task_path.write_bytes(case.task)
        else:
            task_path.write_text(case.task, encoding="utf-8")
    for name, content in case.files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Link):
            (root / name).symlink_to(content.target)
        elif isinstance(content, bytes):
            (root / name).write_bytes(content)
        else:
            (root / name).write_text(content, encoding="utf-8")
    return task_path


ERROR_LINE = re.compile(r"error: (?P<file>[^:]+?)(?::(?P<line>\d+))?: (?P<msg>.+)")


@dataclass
class Outcome:
    proc: subprocess.CompletedProcess[str]
    root: Path
    runs: Path


def run_case(case: Case, tmp_path: Path) -> Outcome:
    root = tmp_path / "work"
    root.mkdir(parents=True)
    runs = tmp_path / "runs"
    task_path = write_case(case, root)
    proc = run_cli(["run", str(task_path), "--runs-dir", str(runs)], cwd=tmp_path)
    return Outcome(proc, root, runs)


FEW_SHOT_NO_TRAIN = Case(
    edit("  output: answer", "  output: answer\n  split_field: split").replace("  - zero_shot", "  - few_shot"),
    "task.yaml", 13, "needs train examples",
    files=with_data("data.jsonl", rows_jsonl(5, split="test")),
)

ALL_CASES = {**CASES, "few-shot-no-train": FEW_SHOT_NO_TRAIN}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every case run once through the CLI; in parallel, since each run is mostly interpreter start-up."""
    base = tmp_path_factory.mktemp("bad_inputs")
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {name: pool.submit(run_case, case, base / name) for name, case in ALL_CASES.items()}
        return {name: f.result() for name, f in futures.items()}


def check_bad_input(case: Case, outcome: Outcome) -> None:
    proc, root, runs = outcome.proc, outcome.root, outcome.runs
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stdout.strip() == "", proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    m = ERROR_LINE.fullmatch(lines[0])
    assert m, lines[0]
    assert Path(m["file"]).resolve() == (root / case.where).resolve(), lines[0]
    if case.line is None:
        assert m["line"] is None, lines[0]
    elif isinstance(case.line, set):
        assert m["line"] is not None and int(m["line"]) in case.line, lines[0]
    elif case.line is not ANY_LINE:
        assert m["line"] is not None and int(m["line"]) == case.line, lines[0]
    assert case.phrase in m["msg"], lines[0]
    # nothing was started: no run folder (half-made or not) under the runs dir
    assert not runs.exists() or not [p for p in runs.iterdir() if p.is_dir()], list(runs.iterdir())


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name: str, outcomes: dict[str, Outcome]) -> None:
    check_bad_input(CASES[name], outcomes[name])


def test_few_shot_without_train_examples_is_an_input_error(outcomes: dict[str, Outcome]) -> None:
    check_bad_input(FEW_SHOT_NO_TRAIN, outcomes["few-shot-no-train"])


def test_runs_listing_still_works_after_bad_input(outcomes: dict[str, Outcome]) -> None:
    # a bad input caught only after the data is read still leaves `tunewise runs` working
    outcome = outcomes["few-shot-no-train"]
    assert outcome.proc.returncode == 2
    proc = run_cli(["runs", "--runs-dir", str(outcome.runs)], cwd=outcome.root)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    for run_dir in [p for p in outcome.runs.iterdir() if p.is_dir()] if outcome.runs.exists() else []:
        assert run_dir.name in proc.stdout  # listed, not skipped or choked on


def one_error_line(proc: subprocess.CompletedProcess[str]) -> re.Match[str]:
    """The bad-input contract for a command outside `run`'s cases: exit 2, one `error:` line, no traceback."""
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    m = ERROR_LINE.fullmatch(lines[0])
    assert m, lines[0]
    return m


@pytest.mark.parametrize("inside", [False, True])
def test_runs_dir_that_is_a_file_is_one_line_for_every_command(tmp_path: Path, inside: bool) -> None:
    task = write_case(Case(BASE, "task.yaml", None, ""), tmp_path / "work")
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder\n")
    runs = blocker / "deeper" if inside else blocker
    commands = [["run", str(task)], ["runs"], ["show", "x"], ["report", "x"], ["index", str(task)],
                ["compare", "a", "b"]]
    with ThreadPoolExecutor(max_workers=2) as pool:
        procs = list(pool.map(lambda args: run_cli([*args, "--runs-dir", str(runs)], cwd=tmp_path), commands))
    for args, proc in zip(commands, procs):
        m = one_error_line(proc)
        assert Path(m["file"]) == blocker and "--runs-dir must be a folder" in m["msg"], (args, m[0])
    assert blocker.read_text() == "not a folder\n"


def test_a_damaged_run_is_one_line_for_show_report_and_resume_and_nothing_changes(tmp_path: Path, server) -> None:
    import hashlib

    from capitals import write_capitals_task

    import tunewise
    from tunewise.evaluation.experiment import RunOptions

    task = write_capitals_task(tmp_path / "task", server.base_url, arms=["zero_shot"])
    runs = tmp_path / "runs"
    run_id = tunewise.run(task, RunOptions(runs_dir=runs)).store.run_id
    folder = runs / run_id
    pristine = {p: p.read_bytes() for p in folder.iterdir()}
    results = folder / "results.jsonl"
    lines = results.read_bytes().split(b"\n")
    damages = {
        "manifest": (folder / "manifest.json", b'{"task": "capitals", "model": ', 1, "not valid JSON"),
        "results-line-5": (results, b"\n".join([*lines[:4], b'{"arm": "zero_shot"}', *lines[5:]]), 5,
                           "not a result (example_id: Field required)"),
    }
    for path, damaged, line, phrase in damages.values():
        for p, data in pristine.items():
            p.write_bytes(data)
        path.write_bytes(damaged)
        before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
        sent = len(server.log.entries)
        commands = [["show", run_id], ["report", run_id], ["run", str(task), "--resume", run_id],
                    ["compare", run_id, run_id]]
        with ThreadPoolExecutor(max_workers=2) as pool:
            procs = list(pool.map(lambda args: run_cli([*args, "--runs-dir", str(runs)], cwd=tmp_path), commands))
        for args, proc in zip(commands, procs):
            m = one_error_line(proc)
            assert (Path(m["file"]), int(m["line"])) == (path, line), (args, m[0])
            assert m["msg"].startswith(phrase) and ("start a new run" in m["msg"]), (args, m[0])
        assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()} == before
        assert len(server.log.entries) == sent
