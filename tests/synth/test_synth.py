"""tunewise synth: in-flight rejection against generate-then-filter on a generator whose defects are known."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from synth_writer import DEFECTS, ScriptedGenerator, pieces, write, write_problems_task

from tunewise.data import load_dataset
from tunewise.near_duplicates import NearDuplicates
from tunewise.synth.run import Plan, SynthOptions, asynthesize, samples_path, stats_path
from tunewise.taskfile import load_task

LOOSE_COPIES = {"validators": ["well_posed", {"duplicate": {"max_rouge_l": 0.9}}, "hedging", "markers", "arithmetic",
                               "parses", "grounded"]}


def _task(tmp_path: Path, **synth: object):
    return load_task(write_problems_task(tmp_path, {"uri": "openai:gen", "base_url": "http://127.0.0.1:9/v1"},
                                         synth={**LOOSE_COPIES, **synth}))


def _evaluation_inputs(task) -> list[str]:
    ds = load_dataset(task)
    return [e.input for e in ds.dev + ds.test]


def _run(task, out: Path, generator, n: int = 60, baseline: bool = True):
    return asyncio.run(asynthesize(task, SynthOptions(n=n, out=out, baseline=baseline), generator))


def test_in_flight_rejection_generates_exactly_the_tokens_the_planted_defects_allow(tmp_path):
    task = _task(tmp_path)
    generator = ScriptedGenerator(_evaluation_inputs(task))
    stats = _run(task, tmp_path / "synth.jsonl", generator)
    plan = Plan(task, task.synth)
    log = [json.loads(line) for line in samples_path(tmp_path / "synth.jsonl").read_text().splitlines()[1:]]
    msifr = {o["attempt"]: o for o in log if o["method"] == "msifr"}
    expected = 0
    for attempt in msifr:
        written = write(plan.request(attempt).messages[-1][1], generator.evaluation_inputs)
        parts = pieces(written.text)
        s1 = next(i for i, p in enumerate(parts) if p.strip() == "ANSWER:") + 1
        if written.stage == 1:
            expected += s1
        elif written.stage == 2:
            expected += s1 + plan.budget
        else:
            expected += len(parts)
        assert msifr[attempt]["accepted"] == (written.defect is None or msifr[attempt]["accepted"]), written.defect
        if written.defect is not None:
            assert not msifr[attempt]["accepted"] and msifr[attempt]["stage"] == written.stage, (written.defect, msifr[attempt])
    assert stats.msifr.tokens_out == expected
    assert stats.filter is not None and stats.filter.attempts == stats.msifr.attempts
    assert stats.msifr.accepted == stats.filter.accepted >= 60
    assert stats.tokens_saved_pct is not None and stats.tokens_saved_pct > 10
    assert set(stats.msifr.rejections) == {"S1", "S2", "S3"} and stats.filter.stopped_at.keys() == {"S3"}
    assert generator.generated == stats.msifr.tokens_out + stats.filter.tokens_out  # nothing generated unaccounted


def test_the_written_set_is_chat_jsonl_with_stats_beside(tmp_path):
    task = _task(tmp_path)
    out = tmp_path / "synth.jsonl"
    stats = _run(task, out, ScriptedGenerator(_evaluation_inputs(task)), n=12, baseline=False)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == stats.written == 12
    for line in lines:
        system, user, assistant = line["messages"]
        assert system == {"role": "system", "content": task.instructions}
        assert user["role"] == "user" and user["content"].endswith("?")
        assert assistant["role"] == "assistant" and "The answer is" in assistant["content"]
    assert json.loads(stats_path(out).read_text())["written"] == 12


def test_near_copies_of_dev_and_test_inputs_never_reach_the_set(tmp_path):
    task = load_task(write_problems_task(tmp_path, {"uri": "openai:gen"}))  # the default ROUGE-L bound, 0.7
    evaluation = _evaluation_inputs(task)
    near_copies = [" ".join(q.split()[:-1] + ["today?"]) for q in evaluation]  # one word changed
    stats = _run(task, tmp_path / "synth.jsonl", ScriptedGenerator(near_copies, rates=(("copy", 0.5, 1),)), n=20,
                 baseline=False)
    assert stats.msifr.rejections["S1"]["duplicate"] >= 10
    references = NearDuplicates(0.7)
    for text in evaluation:
        references.add(text, "evaluation")
    written = [json.loads(line)["messages"][1]["content"] for line in (tmp_path / "synth.jsonl").read_text().splitlines()]
    assert written and all(references.match(q) is None for q in written)
    reasons = [json.loads(line)["reasons"].get("duplicate", "") for line in samples_path(tmp_path / "synth.jsonl").read_text().splitlines()[1:]]
    assert any("near-copy of a test input" in r for r in reasons) and any("near-copy of a dev input" in r for r in reasons)


class Interrupted(Exception):
    pass


class DiesAfter(ScriptedGenerator):
    """Fails for good after `streams` streams, as a killed run would."""

    def __init__(self, evaluation_inputs: list[str], streams: int):
        super().__init__(evaluation_inputs)
        self.left = streams

    async def stream(self, request, *, sample=0):
        if self.left == 0:
            raise Interrupted
        self.left -= 1
        async for piece in super().stream(request, sample=sample):
            yield piece


def test_a_second_call_resumes_and_generates_nothing_twice(tmp_path):
    task = _task(tmp_path)
    out = tmp_path / "synth.jsonl"
    dying = DiesAfter(_evaluation_inputs(task), streams=13)
    with pytest.raises(Interrupted):
        _run(task, out, dying, n=30, baseline=False)
    first = dying.calls
    again = ScriptedGenerator(_evaluation_inputs(task))
    stats = _run(task, out, again, n=30, baseline=False)
    assert first + again.calls == stats.msifr.attempts  # every attempt generated once
    whole = ScriptedGenerator(_evaluation_inputs(task))
    assert _run(task, tmp_path / "whole.jsonl", whole, n=30, baseline=False) == stats.model_copy(
        update={"out": str(tmp_path / "whole.jsonl")})
    assert out.read_text() == (tmp_path / "whole.jsonl").read_text()
    idle = ScriptedGenerator(_evaluation_inputs(task))
    _run(task, out, idle, n=30, baseline=False)
    assert idle.calls == 0


def test_a_changed_synth_block_does_not_resume_another_ones_samples(tmp_path):
    task = _task(tmp_path)
    out = tmp_path / "synth.jsonl"
    _run(task, out, ScriptedGenerator(_evaluation_inputs(task)), n=5, baseline=False)
    changed = _task(tmp_path, threshold=0.9)
    with pytest.raises(Exception, match="written for another synth: block"):
        _run(changed, out, ScriptedGenerator(_evaluation_inputs(task)), n=5, baseline=False)


def test_a_users_validator_is_named_in_the_stats(tmp_path):
    (tmp_path / "my_checks.py").write_text(
        "def no_sevens(draft):\n    return 0.0 if '7' in draft.input else 1.0\n")
    task = _task(tmp_path, validators=["well_posed", {"python:my_checks:no_sevens": {"stage": 1}}])
    stats = _run(task, tmp_path / "synth.jsonl", ScriptedGenerator(_evaluation_inputs(task)), n=20, baseline=False)
    assert stats.msifr.rejections["S1"]["python:my_checks:no_sevens"] > 0
    written = [json.loads(line)["messages"][1]["content"] for line in (tmp_path / "synth.jsonl").read_text().splitlines()]
    assert written and not any("7" in q for q in written)


@pytest.mark.parametrize("synth, message", [
    ({"validators": ["hedgin"]}, "unknown validator 'hedgin'"),
    ({"validators": [{"well_posed": {"min_wrds": 3}}]}, "validator well_posed: unknown option 'min_wrds'"),
    ({"threshold": 0}, "synth.threshold: Input should be greater than 0"),
    ({"seeds": -1}, "synth.seeds"),
    ({"generator": "gpt-4o"}, "model uri must be openai:<model>"),
    ({"validators": ["python:no_such_module:check"]}, "validator python:no_such_module:check: cannot import"),
    ({"validators": [{"python:m:f": {"stage": 4}}]}, "stage must be 1, 2 or 3"),
])
def test_a_bad_synth_block_is_one_line_at_its_line(tmp_path, synth, message):
    path = write_problems_task(tmp_path, {"uri": "openai:gen", "base_url": "http://127.0.0.1:9/v1"}, synth=synth)
    done = subprocess.run([sys.executable, "-m", "tunewise.cli", "synth", str(path), "--n", "3", "--out",
                           str(tmp_path / "s.jsonl")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"error: {path}:"), done.stderr
    assert message in done.stderr
    assert not (tmp_path / "s.jsonl").exists()
