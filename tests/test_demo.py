"""`tunewise demo --quick`: the whole ladder on the lab, offline, through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_quick_demo_runs_every_lab_task(tmp_path):
    env = {**os.environ, "TUNEWISE_CACHE_DIR": str(tmp_path / "cache")}
    runs = tmp_path / "runs"
    r = subprocess.run([sys.executable, "-m", "tunewise.cli", "demo", "--quick", "--runs-dir", str(runs)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    summaries = {}
    for run in sorted(p for p in runs.iterdir() if (p / "summary.json").is_file()):
        summary = json.loads((run / "summary.json").read_text())
        summaries[summary["task"]] = summary
        assert (run / "report.html").is_file() and (run / "report.md").is_file()
        assert f"{summary['task']}: recommend {summary['recommendation']['arm']}" in r.stdout
    assert set(summaries) == {"dialog", "facts", "format", "mixed", "skill"}
    arms = {task: [a["name"] for a in s["arms"]] for task, s in summaries.items()}
    prompting, retrieval = ["zero_shot", "few_shot"], ["rag", "few_shot_rag"]
    assert arms["facts"] == [*prompting, *retrieval, "finetune", "finetune_rag"]
    assert arms["mixed"] == [*prompting, *retrieval, "adaptive_rag", "self_consistency", "committee"]
    assert arms["format"] == prompting
    assert arms["skill"] == [*prompting, "finetune"]
    assert arms["dialog"] == ["rag_plain", "rag_transcript", "rag_verified", "rag_plain_verified", "rag_plain_abstain"]
    # finetune and finetune_rag share one training, on the train split and the documents
    facts_run = next(p for p in runs.iterdir() if p.name.endswith("-facts"))
    record = json.loads((facts_run / "manifest.json").read_text())["prepared"]
    assert record["finetune_rag"]["reused"] and record["finetune"]["adapter"] == record["finetune_rag"]["adapter"]
    assert record["finetune"]["train_examples"] > 100
    for s in summaries.values():
        assert all(a["n"] == 40 and a["errors"] == 0 for a in s["arms"])
    # retrieval is scored against the gold documents the lab knows
    facts = {a["name"]: a for a in summaries["facts"]["arms"]}
    assert facts["rag"]["recall_at_k"] is not None and facts["rag"]["recall_at_k"] > 0.5
