"""A synthetic set in a run: finetune trains on it and few_shot shows it, less its near-copies of dev/test inputs."""

from __future__ import annotations

import json

from capitals import write_capitals_task

import tunewise
from tunewise.evaluation.experiment import RunOptions
from tunewise.finetune.export import write_jsonl


def _synthetic(path, test_questions: list[str]) -> None:
    """Ten new questions, and three near-copies of test questions (one word changed) that must never be used."""
    new = [[{"role": "system", "content": "Answer with the name of the capital only."},
            {"role": "user", "content": f"Which city is the seat of government of Synthland{i}?"},
            {"role": "assistant", "content": f"Synthville{i}"}] for i in range(10)]
    copies = [[{"role": "user", "content": q.replace("What is", "What's")}, {"role": "assistant", "content": "x"}]
              for q in test_questions[:3]]
    write_jsonl(new + copies, path)
    (path.parent / "synth.stats.json").write_text(json.dumps({"generator": "openai:big", "tokens_saved_pct": 41.0,
                                                               "msifr": {"attempts": 30}}))


def _test_questions(task_dir) -> list[str]:
    rows = [json.loads(line) for line in (task_dir / "data.jsonl").read_text().splitlines()]
    return [r["question"] for r in rows if r["split"] == "test"]


def test_finetune_trains_on_the_synthetic_set_less_its_copies_of_test_inputs(tmp_path, server):
    arms = [{"finetune": {"name": "finetune_synth", "synthetic": "synth.jsonl", "poll_s": 0.02, "max_poll_s": 0.05}}]
    task = write_capitals_task(tmp_path / "task", server.base_url, arms=arms)
    _synthetic(tmp_path / "task" / "synth.jsonl", _test_questions(tmp_path / "task"))
    outcome = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))

    (job,) = server.fine_tuning.jobs.values()
    trained = [json.loads(line) for line in server.fine_tuning.contents[job["training_file"]].splitlines()]
    users = [m["content"] for t in trained for m in t["messages"] if m["role"] == "user"]
    assert len(trained) == 48 + 10 and sum("Synthland" in u for u in users) == 10
    assert not any(u.startswith("What's") for u in users)
    (arm,) = outcome.summary.arms
    assert arm.extras.synthetic == "synth.jsonl" and arm.extras.synthetic_examples == 10
    assert arm.extras.synthetic_dropped == 3
    assert arm.extras.synthetic_generator == "openai:big" and arm.extras.synthetic_tokens_saved_pct == 41.0
    report = (outcome.store.dir / "report.md").read_text()
    assert "synthetic set" in report and "synth.jsonl" in report


def test_few_shot_draws_demonstrations_from_the_synthetic_set_too(tmp_path, server):
    arms = [{"few_shot": {"name": "few_shot_synth", "k": 8, "synthetic": "synth.jsonl"}}]
    task = write_capitals_task(tmp_path / "task", server.base_url, arms=arms)
    tests = _test_questions(tmp_path / "task")
    _synthetic(tmp_path / "task" / "synth.jsonl", tests)
    outcome = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
    results = [json.loads(line) for line in (outcome.store.dir / "results.jsonl").read_text().splitlines()]
    shown = [d for r in results for d in r["meta"]["demos"]]
    assert any(d.startswith("synthetic-") for d in shown)
    assert {d for d in shown if d.startswith("synthetic-")} <= {f"synthetic-{i}" for i in range(10)}
