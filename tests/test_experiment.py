"""End to end through the library against a real loopback OpenAI-compatible server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from capitals import write_capitals_task

import tunewise
from tunewise.evaluation.experiment import RunOptions


def outputs(run_dir: Path) -> dict[tuple[str, str], tuple[str, float]]:
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return {(r["arm"], r["example_id"]): (r["output"], r["score"]) for r in rows}


def test_run_writes_contract_files_and_second_run_is_all_cache(tmp_path, server):
    task = write_capitals_task(tmp_path / "task", server.base_url)
    runs = tmp_path / "runs"
    first = tunewise.run(task, RunOptions(runs_dir=runs))
    calls_after_first = len(server.log.entries)
    assert calls_after_first == 64  # 32 test examples x 2 arms, one call each

    for name in ("manifest.json", "summary.json", "report.md", "report.html"):
        assert (first.store.dir / name).is_file()
    summary = json.loads((first.store.dir / "summary.json").read_text())
    assert [a["name"] for a in summary["arms"]] == ["zero_shot", "few_shot"]
    for arm in summary["arms"]:
        for key in ("score", "ci", "n", "cost_per_1k", "fixed_cost", "p50_latency_ms", "p95_latency_ms",
                    "tokens_in", "tokens_out", "errors"):
            assert key in arm
        assert arm["n"] == 32 and arm["errors"] == 0
        assert arm["ci"][0] <= arm["score"] <= arm["ci"][1]
    zero, few = summary["arms"]
    assert zero["score"] == 0.0  # the scripted model answers in sentences when shown no demonstrations
    assert few["score"] > 0.8 and few["ci"][0] > zero["ci"][1]
    assert few["tokens_in"] > zero["tokens_in"]  # demonstrations cost prompt tokens
    assert summary["recommendation"]["arm"] == "few_shot"
    assert summary["recommendation"]["meets_requirements"] is True

    second = tunewise.run(task, RunOptions(runs_dir=runs))
    assert len(server.log.entries) == calls_after_first  # identical run: zero model calls
    assert outputs(second.store.dir) == outputs(first.store.dir)
    for arm in second.summary.arms:
        assert arm.cached_calls == arm.calls == 32
        assert arm.fresh_cost == 0.0
    # a hit keeps the original cost and latency
    assert [a.cost_per_1k for a in second.summary.arms] == [a.cost_per_1k for a in first.summary.arms]
    assert [a.p50_latency_ms for a in second.summary.arms] == [a.p50_latency_ms for a in first.summary.arms]


def test_no_cache_sends_every_call_again(tmp_path, server):
    task = write_capitals_task(tmp_path / "task", server.base_url, arms=["zero_shot"])
    runs = tmp_path / "runs"
    tunewise.run(task, RunOptions(runs_dir=runs))
    tunewise.run(task, RunOptions(runs_dir=runs, use_cache=False))
    assert len(server.log.entries) == 64


def test_cost_is_priced_from_usage(tmp_path, server):
    task = write_capitals_task(tmp_path / "task", server.base_url, arms=["zero_shot"])
    outcome = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
    rows = [json.loads(line) for line in (outcome.store.dir / "results.jsonl").read_text().splitlines()]
    for r in rows:
        assert r["cost"] == (r["tokens_in"] * 0.5 + r["tokens_out"] * 1.5) / 1e6
        assert r["tokens_in"] > 0 and r["tokens_out"] > 0
        assert r["input"].startswith("What is the capital of")  # kept for the report's examples
    arm = outcome.summary.arms[0]
    assert abs(arm.cost_per_1k - 1000 * sum(r["cost"] for r in rows) / len(rows)) < 1e-12


def test_few_shot_never_shows_a_test_example(tmp_path, server):
    task = write_capitals_task(tmp_path / "task", server.base_url, arms=[{"few_shot": {"k": 4}}])
    outcome = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
    test_ids = {e for (_, e) in outputs(outcome.store.dir)}
    rows = [json.loads(line) for line in (outcome.store.dir / "results.jsonl").read_text().splitlines()]
    for r in rows:
        assert len(r["meta"]["demos"]) == 4
        assert not set(r["meta"]["demos"]) & test_ids


def test_retry_errors_redoes_only_errored_examples(tmp_path, server):
    task = write_capitals_task(tmp_path / "task", server.base_url, arms=["zero_shot"], model={"max_retries": 0})
    runs = tmp_path / "runs"
    server.fault_rate = 0.5
    first = tunewise.run(task, RunOptions(runs_dir=runs))
    errored = {e for (_, e), r in first.store.latest().items() if r.error}
    assert errored and first.summary.arms[0].errors == len(errored)
    server.fault_rate = 0.0
    before = len(server.log.entries)
    resumed = tunewise.run(task, RunOptions(runs_dir=runs, resume=first.store.run_id, retry_errors=True))
    assert len(server.log.entries) - before == len(errored)
    assert resumed.summary.arms[0].errors == 0
    assert resumed.store.run_id == first.store.run_id


def test_a_crashing_custom_metric_is_recorded_per_example(tmp_path, server):
    task = write_capitals_task(tmp_path / "task", server.base_url, arms=[{"few_shot": {"k": 2}}])
    (tmp_path / "task" / "picky.py").write_text(
        "def score(prediction, target):\n"
        "    if prediction.startswith('I do not'):\n"
        "        raise ValueError('cannot score a refusal')\n"
        "    return prediction == target\n"
    )
    task.write_text(task.read_text().replace("metric: exact", "metric: python:picky:score"))
    outcome = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
    rows = list(outcome.store.latest().values())
    failed = [r for r in rows if r.error]
    assert failed and all(r.error == "metric failed: ValueError: cannot score a refusal" for r in failed)
    assert all(r.output.startswith("I do not") and r.score == 0.0 for r in failed)
    assert outcome.summary.arms[0].errors == len(failed) < len(rows)


def test_the_manifest_is_json_with_paths_in_arm_settings_and_keeps_every_task_setting(tmp_path):
    from tunewise.evaluation.manifest import build_manifest
    from tunewise.taskfile import load_task

    task = load_task(write_capitals_task(tmp_path / "task", "http://unused", arms=[{"finetune": {"extra": "more.jsonl"}}]))
    manifest = json.loads(json.dumps(build_manifest(task, {"train": 48, "dev": 0, "test": 32})))
    assert manifest["arms"][0]["extra"] == "more.jsonl"
    assert manifest["settings"]["model"]["price_in_per_1m"] == 0.5
    assert manifest["settings"]["data"]["split_field"] == "split"
    assert manifest["requirements"] == {"min_score": 0.7, "amortize_months": 12, "equivalence_margin": 0.02}


def test_two_servers_under_one_model_name_never_share_answers_unless_told(tmp_path, server):
    from openai_server import OpenAITestServer

    runs = tmp_path / "runs"
    with OpenAITestServer(max_lifetime_s=120) as other:
        first = write_capitals_task(tmp_path / "a", server.base_url, arms=["zero_shot"])
        second = write_capitals_task(tmp_path / "b", other.base_url, arms=["zero_shot"])
        tunewise.run(first, RunOptions(runs_dir=runs))
        outcome = tunewise.run(second, RunOptions(runs_dir=runs))
        assert len(other.log.entries) == 32 and outcome.summary.arms[0].cached_calls == 0
        shared = write_capitals_task(tmp_path / "c", other.base_url, arms=["zero_shot"], model={"cache_scope": "model"})
        tunewise.run(write_capitals_task(tmp_path / "d", server.base_url, arms=["zero_shot"],
                                         model={"cache_scope": "model"}), RunOptions(runs_dir=runs))
        sent = len(other.log.entries)
        again = tunewise.run(shared, RunOptions(runs_dir=runs))
        assert len(other.log.entries) == sent and again.summary.arms[0].cached_calls == 32  # shared on purpose


def test_report_prices_a_finished_run_again_without_a_call(tmp_path, server):
    import subprocess
    import sys

    import yaml

    task = write_capitals_task(tmp_path / "task", server.base_url)
    runs = tmp_path / "runs"
    outcome = tunewise.run(task, RunOptions(runs_dir=runs))
    before = {a.name: a for a in outcome.summary.arms}
    sent = len(server.log.entries)

    def report(*flags: str) -> dict:
        proc = subprocess.run([sys.executable, "-m", "tunewise.cli", "report", outcome.store.run_id, "--runs-dir", str(runs),
                               *flags], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return {a["name"]: a for a in json.loads((outcome.store.dir / "summary.json").read_text())["arms"]}

    tripled = report("--price-in", "1.5", "--price-out", "4.5")
    for name, arm in tripled.items():
        assert arm["cost_per_1k"] == pytest.approx(3 * before[name].cost_per_1k)
        assert arm["fresh_cost"] == pytest.approx(before[name].fresh_cost)  # what was paid stays what was paid
    spec = yaml.safe_load(task.read_text())
    spec["model"]["price_in_per_1m"], spec["model"]["price_out_per_1m"] = 0.05, 0.15  # the task's prices change
    task.write_text(yaml.safe_dump(spec, sort_keys=False))
    tenth = report()
    for name, arm in tenth.items():
        assert arm["cost_per_1k"] == pytest.approx(before[name].cost_per_1k / 10)
    assert json.loads((outcome.store.dir / "summary.json").read_text())["prices"]["price_in_per_1m"] == 0.05
    assert len(server.log.entries) == sent  # re-priced from the tokens stored: no call
