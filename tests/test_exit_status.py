"""Exit statuses: 0 done, 2 bad input, 3 a model or server that fails, each failure one `error:` line.

A model endpoint that refuses every call (a wrong key, no such model, no server) stops the run at once with
status 3 instead of recording the same error for every example; what was recorded stays, and the run resumes
once the cause is fixed. A failure that is one example's (a 500 after its retries) is still that example's.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from capitals import write_capitals_task
from openai_server import OpenAITestServer
from tiny_gpt2 import build_tiny_gpt2

from tunewise.evaluation.store import RunStore


def cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TUNEWISE_", "HF_"))}
    return subprocess.run([sys.executable, "-m", "tunewise.cli", *args], cwd=cwd, env={**base, "COLUMNS": "200", **env},
                          capture_output=True, text=True, timeout=120)


def error_line(proc: subprocess.CompletedProcess[str], status: int) -> str:
    """The one `error:` line a failed command ends with (a run that started has its header line above it)."""
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert lines and lines[-1].startswith("error: "), proc.stderr
    assert len(lines) == 1 or (len(lines) == 2 and lines[0].startswith("run ")), proc.stderr
    return lines[-1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_key_stops_the_run_at_once_with_status_3_and_it_resumes_once_fixed(tmp_path: Path) -> None:
    with OpenAITestServer(api_key="right", max_lifetime_s=120) as guarded:
        task = write_capitals_task(tmp_path / "task", guarded.base_url, arms=["zero_shot", {"few_shot": {"k": 2}}],
                                   model={"api_key_env": "TW_TEST_KEY"})
        runs = tmp_path / "runs"
        refused = cli(["run", str(task), "--runs-dir", str(runs)], tmp_path, TW_TEST_KEY="wrong")
        line = error_line(refused, 3)
        (run_id,) = [d.name for d in runs.iterdir() if d.is_dir()]
        assert line == (
            "error: arm 'zero_shot': HTTP 401: Incorrect API key provided (the API key is read from TW_TEST_KEY); "
            f"run {run_id} stopped: resume it with `tunewise run {task} --resume {run_id}` once that is fixed"
        )
        assert len(guarded.log.entries) <= 8  # the calls in flight (the run's concurrency), not one per example
        store = RunStore.open(runs, run_id)
        assert store.manifest["status"] == "interrupted" and store.results() == []  # no error recorded as an answer

        fixed = cli(["run", str(task), "--runs-dir", str(runs), "--resume", run_id, "--json"], tmp_path,
                    TW_TEST_KEY="right")
        assert fixed.returncode == 0, fixed.stderr
        summary = json.loads(fixed.stdout)
        assert [(a["n"], a["errors"]) for a in summary["arms"]] == [(32, 0), (32, 0)]
        assert store.manifest["status"] == "complete"


@pytest.mark.parametrize("case", ["no-server", "no-such-model"])
def test_a_model_that_is_not_there_is_status_3_in_one_line(tmp_path: Path, server, case: str) -> None:
    if case == "no-server":
        url, model, said = f"http://127.0.0.1:{closed_port()}/v1", {"max_retries": 1}, "connection failed: "
    else:
        url, model, said = server.base_url, {"uri": "openai:ft:no-such-model"}, "HTTP 404: The model ft:no-such-model"
    task = write_capitals_task(tmp_path / "task", url, arms=["zero_shot"], model=model)
    started = time.monotonic()
    proc = cli(["run", str(task), "--runs-dir", str(tmp_path / "runs")], tmp_path)
    assert time.monotonic() - started < 30
    line = error_line(proc, 3)
    assert line.startswith(f"error: arm 'zero_shot': {said}"), line
    if case == "no-server":
        assert f"(no server at {url.removesuffix('/v1')})" in line
    else:
        assert len(server.log.entries) <= 8


def test_an_example_that_fails_alone_is_still_recorded_as_its_error(tmp_path: Path, server) -> None:
    task = write_capitals_task(tmp_path / "task", server.base_url, arms=["zero_shot"], model={"max_retries": 0})
    server.inject(500, 500)
    proc = cli(["run", str(task), "--runs-dir", str(tmp_path / "runs"), "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["arms"][0]["errors"] == 2


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face cache holding one model, `someorg/tiny`, as the hub client lays it out."""
    cache = tmp_path_factory.mktemp("hf-cache")
    repo = cache / "models--someorg--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abc")
    template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    build_tiny_gpt2(repo / "snapshots" / "0123abc", template, [f"The capital of Country{i} is City{i}." for i in range(50)])
    return cache


def hf_task(tmp_path: Path, name: str) -> Path:
    task = write_capitals_task(tmp_path / "task", "http://unused", arms=["zero_shot"],
                               model={"uri": f"hf:{name}", "max_tokens": 4})
    task.write_text(task.read_text().replace("  base_url: http://unused\n", ""))
    return task


def test_an_hf_hub_model_out_of_the_cache_with_no_hub_is_status_3_at_once(tmp_path: Path, hub_cache: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    task = hf_task(tmp_path, "someorg/not-cached")
    started = time.monotonic()
    proc = cli(["run", str(task), "--runs-dir", str(tmp_path / "runs")], tmp_path, HF_ENDPOINT=endpoint,
               HF_HUB_CACHE=str(hub_cache))
    assert time.monotonic() - started < 15  # transformers alone retries for about a minute
    line = error_line(proc, 3)
    assert line.startswith(f"error: hf:someorg/not-cached is not in the local Hugging Face cache, and the hub "
                           f"{endpoint} cannot be reached"), line
    assert not (tmp_path / "runs").exists()


def test_an_hf_model_the_hub_does_not_know_is_bad_input_at_the_model_line(tmp_path: Path, server,
                                                                          hub_cache: Path) -> None:
    task = hf_task(tmp_path, "someorg/nothing-like-it")
    proc = cli(["run", str(task), "--runs-dir", str(tmp_path / "runs")], tmp_path,
               HF_ENDPOINT=server.base_url.removesuffix("/v1"), HF_HUB_CACHE=str(hub_cache))
    line = error_line(proc, 2)
    number = task.read_text().splitlines().index("  uri: hf:someorg/nothing-like-it") + 1
    assert line.startswith(f"error: {task}:{number}: no model 'someorg/nothing-like-it' on the hub"), line


@pytest.mark.slow
def test_an_hf_model_in_the_cache_runs_with_no_hub(tmp_path: Path, hub_cache: Path) -> None:
    task = hf_task(tmp_path, "someorg/tiny")
    started = time.monotonic()
    proc = cli(["run", str(task), "--runs-dir", str(tmp_path / "runs"), "--json"], tmp_path,
               HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}", HF_HUB_CACHE=str(hub_cache))
    assert proc.returncode == 0, proc.stderr
    assert "Retrying" not in proc.stderr and time.monotonic() - started < 60
    summary = json.loads(proc.stdout)
    assert summary["model"] == "hf:someorg/tiny" and summary["arms"][0]["n"] == 32
