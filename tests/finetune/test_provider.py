"""Provider fine-tuning against the loopback server: files, one job, polling, the tuned model answering."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from capitals import write_capitals_task

import tunewise
from tunewise.evaluation.experiment import RunOptions

ARMS = ["zero_shot", {"few_shot": {"k": 2}}, {"finetune": {"poll_s": 0.02, "max_poll_s": 0.05}}]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tunewise.cli", *args]


def test_provider_job_end_to_end(tmp_path, server):
    task = write_capitals_task(tmp_path / "task", server.base_url, arms=ARMS, model={"price_train_per_1m": 3.0})
    outcome = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))

    (job,) = server.fine_tuning.jobs.values()
    assert job["status"] == "succeeded" and job["model"] == "scripted"
    trained = [json.loads(line) for line in server.fine_tuning.contents[job["training_file"]].splitlines()]
    assert len(trained) == 48  # the train split only, never a test example
    assert trained[0]["messages"][0] == {"role": "system", "content": "Answer with the name of the capital only."}
    assert trained[0]["messages"][-1]["role"] == "assistant"

    arms = {a.name: a for a in outcome.summary.arms}
    assert arms["finetune"].n == 32 and arms["finetune"].errors == 0
    assert arms["finetune"].score > arms["zero_shot"].score + 0.5  # the tuned model answered, not the base
    assert arms["finetune"].tokens_in < arms["few_shot"].tokens_in  # no demonstrations in its prompt
    assert arms["finetune"].fixed_cost == pytest.approx(job["trained_tokens"] * 3.0 / 1e6)
    assert arms["finetune"].fixed_cost > 0 and arms["zero_shot"].fixed_cost == 0
    manifest = json.loads((outcome.store.dir / "manifest.json").read_text())
    assert manifest["prepared"]["finetune"]["job_id"] == job["id"]


@pytest.mark.slow
@pytest.mark.parametrize("state_file", ["kept", "lost"])
def test_sigkill_while_the_job_runs_then_resume_creates_no_second_job(tmp_path, server, state_file):
    server.fine_tuning.polls_to_finish = 10_000
    task = write_capitals_task(tmp_path / "task", server.base_url, arms=ARMS)
    runs = tmp_path / "runs"
    proc = subprocess.Popen(cli("run", str(task), "--runs-dir", str(runs)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not any(server.fine_tuning.polls.values()) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (job_id,) = server.fine_tuning.jobs
    (run_id,) = [d.name for d in runs.iterdir() if d.is_dir()]
    (state,) = (runs / run_id / "jobs").glob("*.json")
    assert json.loads(state.read_text())["job_id"] == job_id
    if state_file == "lost":  # killed after the server made the job, before the run wrote its id down
        state.unlink()

    server.fine_tuning.polls_to_finish = server.fine_tuning.polls[job_id] + 2
    done = subprocess.run(cli("run", str(task), "--runs-dir", str(runs), "--resume", run_id, "--json"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert list(server.fine_tuning.jobs) == [job_id]
    summary = json.loads(done.stdout)
    tuned = {a["name"]: a for a in summary["arms"]}["finetune"]
    assert tuned["n"] == 32 and tuned["errors"] == 0 and tuned["score"] > 0.5
