"""The sampling arms on a real local transformers model (the tiny GPT-2 tests build): samples are seeded,
so a run without the cache reproduces every answer and every pool."""

from __future__ import annotations

import pytest
import yaml
from capitals import write_capitals_task
from tiny_gpt2 import build_tiny_gpt2

import tunewise
from tunewise.evaluation.experiment import RunOptions

TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.mark.slow
def test_self_consistency_and_committee_on_a_local_model(tmp_path):
    corpus = [f"What is the capital of Country{i}? The capital is City{i}." for i in range(300)]
    model = build_tiny_gpt2(tmp_path / "model", TEMPLATE, corpus)
    arms = [{"self_consistency": {"k": 4}}, {"committee": {"k": 3, "judge_max_tokens": 4}}]
    task = write_capitals_task(tmp_path / "task", "http://unused", arms=arms, model={"uri": f"hf:{model}", "max_tokens": 6})
    spec = yaml.safe_load(task.read_text())
    del spec["model"]["base_url"]
    task.write_text(yaml.safe_dump(spec, sort_keys=False))
    first = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
    sc, committee = first.summary.arms
    assert sc.n == committee.n == 32 and sc.errors == committee.errors == 0
    assert sc.calls == 32 * 4 and list(sc.extras.maj_at_k) == ["1", "2", "4"]
    assert committee.calls >= 32 * (3 + 1)  # proposals, at least one critic each
    assert committee.extras.coverage is not None and sc.tokens_in > 10
    again = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs2", use_cache=False))
    assert [(a.score, a.extras.maj_at_k, a.extras.oracle_at_k, a.calls) for a in again.summary.arms] == [
        (a.score, a.extras.maj_at_k, a.extras.oracle_at_k, a.calls) for a in first.summary.arms
    ]
