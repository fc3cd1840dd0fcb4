"""A user's own arm, named in a task as `python:module:Class`: validated by its own params model, run and
reported like a built-in, its typed extras in summary.json and in both reports."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from capitals import write_capitals_task

import tunewise
from tunewise.errors import InputError
from tunewise.evaluation.experiment import RunOptions
from tunewise.taskfile import load_task

# The README's example, as a user would write it next to their task file.
ECHO = '''
from pydantic import Field

import tunewise


class EchoExtras(tunewise.ArmExtras):
    section = "Echo"
    caption = "How often the model's first sample was repeated back."
    repeats: float = Field(title="mean repeats")


class EchoArm(tunewise.Arm):
    """Asks k times, answers with the most common reply, records how many agreed."""

    class Params(tunewise.ArmParams):
        k: int = Field(3, ge=1)

    class Meta(tunewise.AnswerMeta):
        repeats: int

    async def answer(self, query, lm):
        prompt = [{"role": "user", "content": query.input}]
        texts = [s.text for s in await lm.complete(lm.request(prompt, temperature=0.7), self.params.k)]
        best = max(texts, key=texts.count)
        return tunewise.Answer(best, self.Meta(repeats=texts.count(best)))

    @classmethod
    def summarize(cls, params, results, record, peers):
        metas = [m for m in cls.metas(results) if m is not None]
        return EchoExtras(repeats=sum(m.repeats for m in metas) / len(metas)) if metas else None
'''


def write_task(tmp_path, server, entry) -> object:
    task = write_capitals_task(tmp_path / "task", server.base_url, arms=["zero_shot", entry])
    (tmp_path / "task" / "my_arms.py").write_text(ECHO)
    return task


def test_a_user_arm_runs_and_reports_its_typed_extras(tmp_path, server, monkeypatch):
    task = write_task(tmp_path, server, {"arm": "python:my_arms:EchoArm", "k": 3})
    monkeypatch.chdir(tmp_path)  # the module is found next to the task file, not in the working directory
    outcome = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
    summary = json.loads((outcome.store.dir / "summary.json").read_text())
    echo = summary["arms"][1]
    assert echo["name"] == "python:my_arms:EchoArm" and echo["n"] == 32 and echo["errors"] == 0
    assert echo["calls"] == 32 * 3  # k samples a query, through the run's caller and cache
    assert 1 <= echo["extras"]["repeats"] <= 3
    rows = [json.loads(line) for line in (outcome.store.dir / "results.jsonl").read_text().splitlines()]
    assert all(1 <= r["meta"]["repeats"] <= 3 for r in rows if r["arm"] == echo["name"])
    md = (outcome.store.dir / "report.md").read_text()
    html = (outcome.store.dir / "report.html").read_text()
    assert "## Echo" in md and f"| {echo['name']} | {echo['extras']['repeats']:.3f} |" in md
    assert re.search(r'<h2 id="echo">Echo</h2>', html) and "mean repeats" in html
    # Written again from the store (a fresh process would import the module from the task folder again).
    again = tunewise.report_run(outcome.store.run_id, tmp_path / "runs")
    assert json.loads(again["summary"].read_text())["arms"][1]["extras"] == echo["extras"]


@pytest.mark.parametrize(("entry", "line", "message"), [
    ({"arm": "python:my_arms:EchoArm", "kk": 3}, 20, "unknown field 'kk'"),
    ({"arm": "python:my_arms:EchoArm", "k": 0}, 20, "arms[1].k: Input should be greater than or equal to 1"),
    ({"arm": "python:my_arms:Nothing"}, 19, "module 'my_arms' has no class 'Nothing'"),
    ({"arm": "python:no_such_arms:EchoArm"}, 19, "cannot import arm module 'no_such_arms'"),
    ({"arm": "python:my_arms:EchoExtras"}, 19, "is not a subclass of tunewise.Arm"),
])
def test_a_bad_user_arm_is_an_error_at_its_line(tmp_path, server, entry, line, message):
    task = write_task(tmp_path, server, entry)
    spec = task.read_text().splitlines()
    with pytest.raises(InputError, match=re.escape(message)) as raised:
        load_task(task)
    assert raised.value.line == line, (spec[raised.value.line - 1], raised.value)
    assert yaml.safe_load(task.read_text())["arms"][1]["arm"].startswith("python:")
