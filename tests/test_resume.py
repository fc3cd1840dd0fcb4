"""A run killed with SIGKILL at any moment resumes without re-sending a completed call."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from capitals import write_capitals_task
from openai_server import messages_hash

import tunewise
from tunewise.evaluation.experiment import RunOptions


def recorded_requests(db: Path) -> set[str]:
    """Messages hashes of every response the client had stored in its cache."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT request FROM responses").fetchall()
    finally:
        conn.close()
    return {
        messages_hash([{"role": role, "content": content} for role, content in json.loads(r[0])["messages"]])
        for r in rows
    }


def final_outputs(run_dir: Path) -> dict[tuple[str, str], tuple[str, float]]:
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return {(r["arm"], r["example_id"]): (r["output"], r["score"]) for r in rows}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tunewise.cli", *args]


def kill_run_after(task: Path, runs: Path, server, calls: int) -> None:
    """`tunewise run task` in a subprocess, SIGKILLed once the server has completed `calls` calls (or after 60 s)."""
    proc = subprocess.Popen(cli("run", str(task), "--runs-dir", str(runs)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(server.log.completed()) < calls and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def before_resume(runs: Path, server) -> tuple[str, set[str], int]:
    """The one run under `runs`, the requests its cache holds, and the calls the server has completed so far: what
    a resume must not send again, and where its own calls start in the server's log."""
    (run_id,) = [d.name for d in runs.iterdir() if d.is_dir()]
    return run_id, recorded_requests(runs / "tunewise.db"), len(server.log.completed())


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [5, 37])
def test_sigkill_midway_then_resume_equals_clean_run(tmp_path, server, kill_after):
    server._server.delay_s = 0.01
    task = write_capitals_task(tmp_path / "task", server.base_url)
    clean = tunewise.run(task, RunOptions(runs_dir=tmp_path / "clean"))
    server.log.entries.clear()

    runs = tmp_path / "runs"
    kill_run_after(task, runs, server, kill_after)
    assert len(server.log.completed()) < 64, "the run finished before it could be killed"

    run_id, recorded, sent_before = before_resume(runs, server)
    show = subprocess.run(cli("show", run_id, "--runs-dir", str(runs)), capture_output=True, text=True)
    assert show.returncode == 0, show.stderr  # readable while half done

    done = subprocess.run(cli("run", str(task), "--runs-dir", str(runs), "--resume", run_id), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    resent = server.log.completed()[sent_before:]
    assert not set(resent) & recorded, "a call recorded before the kill was sent again"
    counts: dict[str, int] = {}
    for digest in server.log.completed():
        counts[digest] = counts.get(digest, 0) + 1
    duplicated = {d for d, c in counts.items() if c > 1}
    assert not duplicated & recorded
    assert len(duplicated) <= 4  # only calls in flight at the kill (max_concurrency) may repeat

    assert final_outputs(runs / run_id) == final_outputs(clean.store.dir)
    summary = json.loads((runs / run_id / "summary.json").read_text())
    assert [a["n"] for a in summary["arms"]] == [32, 32]
    assert json.loads((runs / run_id / "manifest.json").read_text())["status"] == "complete"


def test_torn_last_line_is_repaired_on_resume(tmp_path, server):
    task = write_capitals_task(tmp_path / "task", server.base_url, arms=["zero_shot"])
    runs = tmp_path / "runs"
    first = tunewise.run(task, RunOptions(runs_dir=runs))
    results = first.store.dir / "results.jsonl"
    lines = results.read_text().splitlines(keepends=True)
    results.write_text("".join(lines[:10]) + lines[10][:25])  # killed while writing line 11
    resumed = tunewise.run(task, RunOptions(runs_dir=runs, resume=first.store.run_id))
    assert final_outputs(resumed.store.dir) == final_outputs(first.store.dir)
    assert all(line.endswith("\n") for line in results.read_text().splitlines(keepends=True))
    assert len(server.log.entries) == 32  # the 22 redone examples came from the cache


def test_resume_refuses_a_changed_task(tmp_path, server):
    task = write_capitals_task(tmp_path / "task", server.base_url, arms=["zero_shot"])
    runs = tmp_path / "runs"
    first = tunewise.run(task, RunOptions(runs_dir=runs))
    task.write_text(task.read_text().replace("min_score: 0.7", "min_score: 0.9"))
    r = subprocess.run(cli("run", str(task), "--runs-dir", str(runs), "--resume", first.store.run_id), capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: {task}: the task or its data changed")
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path, server):
    server._server.delay_s = 0.05
    task = write_capitals_task(tmp_path / "task", server.base_url)
    runs = tmp_path / "runs"
    # A shell without job control starts background jobs with SIGINT ignored, and children inherit that: give
    # the run the default disposition a terminal's Ctrl-C meets (this test failed under `bash .ci/run &`).
    proc = subprocess.Popen(cli("run", str(task), "--runs-dir", str(runs)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while len(server.log.completed()) < 8 and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err + out
    (run_id,) = [d.name for d in runs.iterdir() if d.is_dir()]
    assert err.strip().splitlines()[-1] == f"interrupted: resume with `tunewise run {task} --resume {run_id}`"
    manifest = json.loads((runs / run_id / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    _, recorded, sent_before = before_resume(runs, server)
    done = subprocess.run(cli("run", str(task), "--runs-dir", str(runs), "--resume", run_id), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not set(server.log.completed()[sent_before:]) & recorded
    assert len(server.log.completed()) <= 64 + 4  # at most the calls in flight at Ctrl-C were answered twice
