"""A served fine-tuned arm is the adapter the run trained: its answers replay, and without it the server refuses."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import openai
import pytest
import yaml
from capitals import write_capitals_task
from conftest import KEY, Served
from tiny_gpt2 import build_tiny_gpt2

import tunewise
from tunewise.evaluation.experiment import RunOptions

pytestmark = pytest.mark.slow

TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n ' + m['content'] + '<|end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


def test_the_trained_adapter_is_served_and_its_loss_refuses_the_server(tmp_path):
    corpus = [f"What is the capital of Country{i}? The capital is City{i}." for i in range(300)]
    model = build_tiny_gpt2(tmp_path / "model", TEMPLATE, corpus)
    task = write_capitals_task(tmp_path / "task", "http://unused", arms=[{"finetune": {"r": 4, "max_steps": 12, "lr": 5e-3}}],
                               model={"uri": f"hf:{model}", "max_tokens": 6})
    spec = yaml.safe_load(task.read_text())
    del spec["model"]["base_url"]
    task.write_text(yaml.safe_dump(spec, sort_keys=False))
    runs = tmp_path / "runs"
    outcome = tunewise.run(task, RunOptions(runs_dir=runs))
    rows = [json.loads(line) for line in (outcome.store.dir / "results.jsonl").read_text().splitlines()][:8]
    with Served(outcome.store.run_id, runs, keys=None) as s:  # the recommendation: the only arm
        client = openai.OpenAI(base_url=s.base_url, api_key=KEY, max_retries=0)
        got = [client.chat.completions.create(model=s.model_id, messages=[{"role": "user", "content": r["input"]}])
               .choices[0].message.content for r in rows]
    assert got == [r["output"] for r in rows]  # greedy answers of the same merged adapter
    shutil.rmtree(outcome.store.dir / "adapters")
    refused = subprocess.run([sys.executable, "-m", "tunewise.cli", "serve", outcome.store.run_id, "--no-auth",
                              "--runs-dir", str(runs)], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "the adapter this run trained is not in" in refused.stderr
