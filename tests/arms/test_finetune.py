"""The finetune arms in a run: training priced and recorded, reused on --resume, cache keyed by the adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from capitals import write_capitals_task
from test_rag import write_knowledge_task
from tiny_gpt2 import build_tiny_gpt2

import tunewise
from tunewise.evaluation.experiment import RunOptions

TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n ' + m['content'] + '<|end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
LORA = {"r": 4, "max_steps": 12, "lr": 5e-3, "hardware_per_hour": 3.6}


@pytest.fixture(scope="module")
def lora_task(tmp_path_factory) -> Path:
    """The capitals task on a tiny local GPT-2, with a dev split for early stopping."""
    root = tmp_path_factory.mktemp("lora-task")
    corpus = [f"What is the capital of Country{i}? The capital is City{i}." for i in range(300)]
    model = build_tiny_gpt2(root / "model", TEMPLATE, corpus)
    task = write_capitals_task(root, "http://unused", arms=["zero_shot", {"finetune": LORA}],
                               model={"uri": f"hf:{model}", "max_tokens": 6})
    spec = yaml.safe_load(task.read_text())
    del spec["model"]["base_url"]
    task.write_text(yaml.safe_dump(spec, sort_keys=False))
    data = root / "data.jsonl"
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    for i, row in enumerate(rows):
        if row["split"] == "train" and i % 4 == 1:
            row["split"] = "dev"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return task


def arm(outcome, name: str):
    return {a.name: a for a in outcome.summary.arms}[name]


@pytest.mark.slow
def test_lora_arm_is_priced_recorded_and_not_retrained_on_resume(lora_task, tmp_path):
    runs = tmp_path / "runs"
    first = tunewise.run(lora_task, RunOptions(runs_dir=runs))
    run_dir = first.store.dir
    record = json.loads((run_dir / "manifest.json").read_text())["prepared"]["finetune"]
    assert record["method"] == "lora" and record["steps"] == 12 and not record["reused"]
    assert record["best_dev_loss"] is not None  # dev was evaluated
    assert (run_dir / "adapters" / "finetune" / "adapter_model.safetensors").is_file()
    tuned, zero = arm(first, "finetune"), arm(first, "zero_shot")
    assert tuned.n == 32 and tuned.errors == 0
    assert tuned.fixed_cost == pytest.approx(record["seconds"] / 1000, rel=1e-3)  # $3.6/h
    assert zero.fixed_cost == 0
    assert tuned.tokens_in == zero.tokens_in  # the same short prompt, no demonstrations

    # Killed after training, before the answers were written: resume must reuse the adapter.
    marker = run_dir / "adapters" / "finetune" / "tunewise.json"
    trained_at = marker.stat().st_mtime_ns
    results = run_dir / "results.jsonl"
    results.write_text("".join(line + "\n" for line in results.read_text().splitlines() if '"finetune"' not in line))
    resumed = tunewise.run(lora_task, RunOptions(runs_dir=runs, resume=first.store.run_id))
    assert marker.stat().st_mtime_ns == trained_at
    assert json.loads((run_dir / "manifest.json").read_text())["prepared"]["finetune"]["reused"]
    again = arm(resumed, "finetune")
    assert again.cached_calls == again.calls == 32  # same adapter, same cache keys
    assert again.score == tuned.score and again.fixed_cost == tuned.fixed_cost


@pytest.mark.slow
def test_another_adapter_never_gets_cached_answers(lora_task, tmp_path):
    runs = tmp_path / "runs"
    tunewise.run(lora_task, RunOptions(runs_dir=runs))
    spec = yaml.safe_load(lora_task.read_text())
    spec["arms"][1] = {"finetune": {**LORA, "seed": 7}}
    other = lora_task.with_name("other.yaml")
    other.write_text(yaml.safe_dump(spec, sort_keys=False))
    second = tunewise.run(other, RunOptions(runs_dir=runs))
    assert arm(second, "zero_shot").cached_calls == 32
    assert arm(second, "finetune").cached_calls == 0


def test_provider_finetune_rag_reuses_the_job_and_retrieves(tmp_path, server):
    task = write_knowledge_task(
        tmp_path / "task", server.base_url,
        [{"finetune": {"poll_s": 0.01}}, {"finetune_rag": {"k": 2, "retriever": "bm25", "poll_s": 0.01}}],
    )
    outcome = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
    assert len(server.fine_tuning.jobs) == 1  # the same training serves both arms
    tuned, with_rag = arm(outcome, "finetune"), arm(outcome, "finetune_rag")
    assert with_rag.recall_at_k == 1.0
    assert with_rag.score > tuned.score + 0.2  # the documents know what the tuned model does not
    assert with_rag.fixed_cost == tuned.fixed_cost


def test_lora_on_an_openai_model_is_refused_before_the_run(tmp_path, server):
    from tunewise.errors import InputError

    task = write_capitals_task(tmp_path / "task", server.base_url, arms=["zero_shot", {"finetune": {"method": "lora"}}])
    with pytest.raises(InputError, match=r"task.yaml:\d+: arm 'finetune': method lora trains hf: or lab: models"):
        tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()


def test_finetune_on_the_documents_uploads_each_chunk_as_a_conversation(tmp_path, server):
    task = write_knowledge_task(tmp_path / "task", server.base_url, [{"finetune": {"documents": True, "poll_s": 0.01}}])
    outcome = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
    (job,) = server.fine_tuning.jobs.values()
    uploaded = [json.loads(line)["messages"] for line in server.fine_tuning.contents[job["training_file"]].splitlines()]
    asked = {m[0]["content"]: m[1]["content"] for m in uploaded if m[0]["content"].startswith("What does ")}
    assert len(asked) == 11  # every document of the corpus, each one chunk
    assert "The capital of Zorabia is Quellabton." in asked["What does d0.md say?"]
    assert len(uploaded) == len(asked) + sum(1 for line in (tmp_path / "task" / "data.jsonl").read_text().splitlines()
                                             if json.loads(line)["split"] == "train")
    assert arm(outcome, "finetune").recall_at_k is None  # it answers closed-book: the documents are only trained on


def test_finetune_on_the_documents_needs_a_knowledge_section(tmp_path, server):
    from tunewise.errors import InputError

    task = write_capitals_task(tmp_path / "task", server.base_url, arms=[{"finetune": {"documents": True}}])
    with pytest.raises(InputError, match=r"task.yaml:\d+: arm .finetune. reads the task.s documents, but the task has no `knowledge:`"):
        tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
