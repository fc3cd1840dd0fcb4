"""The run store read back: a damaged manifest or results line is an error naming the file, the line and what to
do, and changes nothing; a torn last line (what a kill leaves) is left out, and cut on resume, kept aside."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from capitals import write_capitals_task
from constructed_run import ArmSpec, write_run

import tunewise
from tunewise.decide.summary import summary_of
from tunewise.errors import InputError
from tunewise.evaluation.experiment import RunOptions, check_inputs
from tunewise.evaluation.store import RunStore, list_runs
from tunewise.report import report_run


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` by its sha256: what "nothing changed" is checked against."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def constructed(tmp_path: Path) -> RunStore:
    return write_run(tmp_path / "runs", [ArmSpec("zero_shot", [1, 0, 1, 1]), ArmSpec("b", [1, 1, 0, 1], arm_type="few_shot")])


def read_everything(store: RunStore) -> None:
    """What `show`, `report` and `runs` read of a run."""
    summary_of(RunStore.open(store.dir.parent, store.run_id))
    report_run(store.run_id, store.dir.parent)


MANIFEST_DAMAGE = {
    "not-json": (lambda text: text[: len(text) // 2], "not valid JSON"),
    "not-utf8": (lambda text: text.replace('"constructed"', '"constr\udcffucted"', 1), "not valid UTF-8"),
    "a-list": (lambda text: "[1, 2]\n", "not a run's manifest (a JSON list)"),
    "no-arms": (lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "arms"}), "arms: Field required"),
    "seed-as-text": (lambda text: text.replace('"seed": 0', '"seed": "0"'), "seed: Input should be a valid integer"),
    "names-not-the-arms": (lambda text: text.replace('"b"\n  ]', '"c"\n  ]'), "arm_names ['zero_shot', 'c']"),
    "half-a-surrogate-pair": (lambda text: text.replace('"seed": 0', '"seed": 0, "note": "\\udfff"'),
                              "a \\u escape that is half of a surrogate pair"),
    "bad-requirement": (lambda text: text.replace('"requirements": {}', '"requirements": {"min_score": 7}'),
                        "requirements.min_score"),
}


@pytest.mark.parametrize("damage", list(MANIFEST_DAMAGE))
def test_a_damaged_manifest_is_an_error_naming_it_and_nothing_changes(tmp_path: Path, damage: str) -> None:
    store = constructed(tmp_path)
    spoil, phrase = MANIFEST_DAMAGE[damage]
    path = store.dir / "manifest.json"
    path.write_bytes(spoil(path.read_text()).encode("utf-8", "surrogateescape"))
    before = snapshot(store.dir)
    with pytest.raises(InputError) as e:
        read_everything(store)
    assert e.value.file == str(path)
    assert phrase in e.value.message and e.value.message.endswith("restore the file from a copy, or start a new run")
    if damage == "not-json":
        assert e.value.line is not None
    assert snapshot(store.dir) == before
    assert list_runs(store.dir.parent) == [{"run_id": store.run_id, "status": "damaged manifest"}]


RESULT_DAMAGE = {
    "not-json": (b'{"arm": "zero_shot", "example_id": ', "not valid JSON"),
    "not-utf8": (b'{"arm": "caf\xe9"}', "not valid UTF-8"),
    "not-an-object": (b"[1, 2, 3]", "not a result (a JSON list, not an object)"),
    "half-a-surrogate-pair": (b'{"arm": "zero_shot", "example_id": "e\\ud800", "output": "", "target": "", "score": 0}',
                              "not a result (a \\u escape that is half of a surrogate pair)"),
    "missing-fields": (b'{"arm": "zero_shot"}', "not a result (example_id: Field required)"),
    "score-out-of-range": (None, "not a result (score: 7.0 is not between 0 and 1)"),
    "negative-cost": (None, "not a result (cost: -1.0 is not a number >= 0)"),
    "meta-its-arm-does-not-read": (None, "not a result (demos: Input should be a valid list)"),
}


def spoiled_line(store: RunStore, damage: str) -> bytes:
    raw, _ = RESULT_DAMAGE[damage]
    if raw is not None:
        return raw
    row = json.loads((store.dir / "results.jsonl").read_text().splitlines()[0])
    if damage == "score-out-of-range":
        row["score"] = 7
    elif damage == "negative-cost":
        row["cost"] = -1
    else:
        row.update(arm="b", meta={"demos": 3})  # few_shot records the demonstrations' ids
    return json.dumps(row).encode()


@pytest.mark.parametrize("damage", list(RESULT_DAMAGE))
def test_a_full_line_that_is_not_a_result_is_an_error_at_its_line_and_nothing_changes(tmp_path: Path,
                                                                                        damage: str) -> None:
    store = constructed(tmp_path)
    path = store.dir / "results.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[2] = spoiled_line(store, damage)
    path.write_bytes(b"\n".join(lines))
    before = snapshot(store.dir)
    with pytest.raises(InputError) as e:
        read_everything(store)
    assert (e.value.file, e.value.line) == (str(path), 3)
    assert e.value.message.startswith(RESULT_DAMAGE[damage][1])
    assert e.value.message.endswith("fix or delete the line (a deleted example is answered again on --resume), "
                                    "or start a new run")
    assert snapshot(store.dir) == before


def test_a_torn_last_line_is_left_out_then_cut_on_repair_and_kept_aside(tmp_path: Path) -> None:
    store = constructed(tmp_path)
    path = store.dir / "results.jsonl"
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"arm": "zero_shot", "exam')
    assert len(store.results()) == 8
    summary_of(store)  # show works on it
    assert store.repair() == len(b'{"arm": "zero_shot", "exam')
    assert path.read_bytes() == whole
    path.write_bytes(whole + b'{"arm": "b"')  # a second kill, a second torn line
    store.repair()
    assert (store.dir / "results.jsonl.torn").read_bytes() == b'{"arm": "zero_shot", "exam\n{"arm": "b"\n'
    assert store.repair() == 0 and path.read_bytes() == whole


class _InterruptAtStart:
    """A progress sink pressing Ctrl-C as the run starts: before any work."""

    def start_run(self, run_id: str, directory: str) -> None:
        raise KeyboardInterrupt

    def start_arm(self, arm: str, total: int, done: int) -> None: ...

    def advance(self, arm: str, result: object) -> None: ...

    def training(self, arm: str, step: int, total: int, loss: float) -> None: ...


def test_resuming_a_complete_run_keeps_it_complete_even_when_it_stops_before_any_work(tmp_path: Path, server) -> None:
    task = write_capitals_task(tmp_path / "task", server.base_url, arms=["zero_shot"])
    runs = tmp_path / "runs"
    done = tunewise.run(task, RunOptions(runs_dir=runs)).store
    assert done.manifest["status"] == "complete"
    sent = len(server.log.entries)

    again = tunewise.run(task, RunOptions(runs_dir=runs, resume=done.run_id))  # nothing to do
    assert again.store.manifest["status"] == "complete" and len(server.log.entries) == sent

    with pytest.raises(KeyboardInterrupt):
        tunewise.run(task, RunOptions(runs_dir=runs, resume=done.run_id, progress=_InterruptAtStart()))
    assert done.manifest["status"] == "complete"

    # a resume refused for a damaged results line changes nothing, the status included
    path = done.dir / "results.jsonl"
    first, rest = path.read_text().split("\n", 1)
    path.write_text(json.dumps({**json.loads(first), "score": "high"}) + "\n" + rest)
    before = snapshot(done.dir)
    with pytest.raises(InputError, match="not a result"):
        check_inputs(task, RunOptions(runs_dir=runs, resume=done.run_id))
    with pytest.raises(InputError, match="not a result"):
        tunewise.run(task, RunOptions(runs_dir=runs, resume=done.run_id))
    assert snapshot(done.dir) == before and len(server.log.entries) == sent
