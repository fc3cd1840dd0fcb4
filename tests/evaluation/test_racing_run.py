"""Racing and --budget through `tunewise run` on the loopback server: an arm ruled out is dropped and reported, the
recommendation is the exhaustive run's, a killed race resumes to the same result without re-sending a completed call,
and a budget stops a run that a larger one finishes."""

from __future__ import annotations

import json
import subprocess

import pytest
from capitals import write_capitals_task
from test_resume import before_resume, cli, final_outputs, kill_run_after

import tunewise
from tunewise.evaluation.experiment import RunOptions


def _run_json(*args: str) -> tuple[subprocess.CompletedProcess, dict | None]:
    done = subprocess.run(cli("run", *args, "--json"), capture_output=True, text=True)
    return done, json.loads(done.stdout) if done.stdout.strip() else None


def test_racing_drops_the_ruled_out_arm_and_recommends_as_the_exhaustive_run(tmp_path, server):
    """zero_shot answers in a sentence (0 on `exact`), few_shot with the bare name: racing drops zero_shot after a
    round, reports it, recommends few_shot as the exhaustive run does, and sends fewer calls."""
    task = write_capitals_task(tmp_path / "task", server.base_url)
    exhaustive = tunewise.run(task, RunOptions(runs_dir=tmp_path / "exhaustive"))
    sent = len(server.log.entries)
    done, summary = _run_json(str(task), "--racing", "--runs-dir", str(tmp_path / "racing"))
    assert done.returncode == 0, done.stderr
    racing_calls = len(server.log.entries) - sent

    assert summary["recommendation"]["arm"] == exhaustive.summary.recommendation.arm == "few_shot"
    arms = {a["name"]: a for a in summary["arms"]}
    dropped = arms["zero_shot"]["racing"]
    assert dropped["rule"] == "min_score" and dropped["n"] == arms["zero_shot"]["n"] < 32
    assert dropped["score"] == 0.0 and "below min_score 0.7" in dropped["reason"]
    assert dropped["tokens_saved_est"] > 0 and dropped["dollars_saved_est"] > 0
    assert arms["few_shot"]["racing"] is None and arms["few_shot"]["n"] == 32
    race = summary["racing"]
    assert race["dropped"] == ["zero_shot"] and [r["n"] for r in race["rounds"]] == [4, 7, 10, 13, 16, 20, 23, 26, 29, 32]
    assert race["rounds"][-1]["arms"] == ["few_shot"]
    assert racing_calls == 32 + dropped["n"] < sent
    exhaustive_tokens = sum(a.tokens_in * a.n + a.tokens_out * a.n for a in exhaustive.summary.arms)
    assert race["tokens_spent"] < exhaustive_tokens
    assert race["tokens_exhaustive_est"] == pytest.approx(exhaustive_tokens, rel=0.2)
    assert {"run_id", "task", "arms", "recommendation"} <= summary.keys()  # the contract's keys stay

    (run_id,) = [d.name for d in (tmp_path / "racing").iterdir() if d.is_dir()]
    for report in ("report.md", "report.html"):
        text = (tmp_path / "racing" / run_id / report).read_text()
        assert "Racing" in text and "significantly below few_shot" in text


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [10, 28])
def test_a_killed_racing_run_resumes_to_the_same_result(tmp_path, server, kill_after):
    """Killed mid-round (10 calls: round 2 of 10) or after zero_shot's drop after round 3 (28: round 6), the race
    resumes with the same drops and answers as an uninterrupted one, sending no call it had recorded, never
    zero_shot's again."""
    server._server.delay_s = 0.01
    task = write_capitals_task(tmp_path / "task", server.base_url, racing=True)
    clean = tunewise.run(task, RunOptions(runs_dir=tmp_path / "clean"))
    server.log.entries.clear()

    runs = tmp_path / "runs"
    kill_run_after(task, runs, server, kill_after)
    assert len(server.log.completed()) < 42, "the run finished before it could be killed"
    run_id, recorded, sent_before = before_resume(runs, server)

    done, summary = _run_json(str(task), "--runs-dir", str(runs), "--resume", run_id)
    assert done.returncode == 0, done.stderr
    assert not set(server.log.completed()[sent_before:]) & recorded, "a call recorded before the kill was sent again"
    assert final_outputs(runs / run_id) == final_outputs(clean.store.dir)
    assert summary["racing"]["dropped"] == clean.summary.racing.dropped == ["zero_shot"]
    assert summary["recommendation"]["arm"] == clean.summary.recommendation.arm
    assert len(server.log.completed()) <= 42 + 8  # at most the calls in flight at the kill (8) were answered twice


def test_resuming_a_run_that_did_not_race_with_racing_is_refused(tmp_path, server):
    task = write_capitals_task(tmp_path / "task", server.base_url, arms=["zero_shot"])
    first = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
    r = subprocess.run(cli("run", str(task), "--runs-dir", str(tmp_path / "runs"), "--resume", first.store.run_id,
                           "--racing"), capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "was started without racing" in r.stderr


def test_a_budget_stops_the_run_and_a_larger_one_finishes_it(tmp_path, server):
    """At $1,000 per 1M tokens a call costs about 2-3 cents: a $0.30 budget stops the run after about a dozen calls
    (exit 4, the summary and reports written, saying so); resumed with $100 it completes, re-sending nothing."""
    # (a run answers max(max_concurrency, batch_size) = 8 examples at once)
    task = write_capitals_task(tmp_path / "task", server.base_url,
                               model={"price_in_per_1m": 1000.0, "price_out_per_1m": 1000.0})
    runs = tmp_path / "runs"
    done, summary = _run_json(str(task), "--runs-dir", str(runs), "--budget", "0.30")
    assert done.returncode == 4, done.stderr
    assert "budget reached" in done.stderr and "--resume" in done.stderr
    (run_id,) = [d.name for d in runs.iterdir() if d.is_dir()]
    assert json.loads((runs / run_id / "manifest.json").read_text())["status"] == "budget reached"
    assert summary["status"] == "budget reached" and summary["budget"]["spent"] >= 0.30
    assert summary["recommendation"]["reasons"][0].startswith("the run stopped at its budget of $0.30")
    stopped = len((runs / run_id / "results.jsonl").read_text().splitlines())
    price = summary["budget"]["spent"] / stopped
    assert (stopped - 8) * price < 0.30  # only the calls in flight (8 at once: the model's batch_size) went past it
    assert "budget" in (runs / run_id / "report.md").read_text()
    _, recorded, sent_before = before_resume(runs, server)

    again, summary = _run_json(str(task), "--runs-dir", str(runs), "--resume", run_id, "--budget", "100")
    assert again.returncode == 0, again.stderr
    assert summary["status"] == "complete" and [a["n"] for a in summary["arms"]] == [32, 32]
    assert not set(server.log.completed()[sent_before:]) & recorded
    assert len(server.log.completed()) == 64


def test_racing_settings_are_checked_as_task_input(tmp_path):
    """`racing: true` is the defaults; rounds that do not grow are one line of bad input, naming the line; so is a
    budget that is not a positive amount."""
    from tunewise.taskfile import load_task

    task = write_capitals_task(tmp_path / "task", "http://unused", racing=True)
    assert load_task(task).racing.rounds == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    short = write_capitals_task(tmp_path / "short", "http://unused", racing={"rounds": [0.2, 0.5], "alpha": 0.1})
    assert load_task(short).racing.rounds == [0.2, 0.5, 1.0]
    bad = write_capitals_task(tmp_path / "bad", "http://unused", racing={"rounds": [0.5, 0.2]})
    r = subprocess.run(cli("run", str(bad), "--runs-dir", str(tmp_path / "runs")), capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith(f"error: {bad}:") and "rounds must be increasing shares" in r.stderr
    r = subprocess.run(cli("run", str(task), "--runs-dir", str(tmp_path / "runs"), "--budget", "0"),
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--budget must be a positive amount" in r.stderr
    assert not (tmp_path / "runs").exists()
