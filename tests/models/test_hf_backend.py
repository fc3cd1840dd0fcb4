"""The `hf:` backend on a tiny GPT-2 the test builds itself (no hub)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from capitals import write_capitals_task
from tiny_gpt2 import build_tiny_gpt2

import tunewise
from tunewise.evaluation.experiment import RunOptions
from tunewise.models.base import ChatRequest
from tunewise.spec import ModelSpec

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    corpus = [f"What is the capital of Country{i}? The capital is City{i}." for i in range(300)]
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"), CHAT_TEMPLATE, corpus)


def spec(**kw) -> ModelSpec:
    return ModelSpec(uri="hf:tiny", max_tokens=8, **kw)


def requests(n: int) -> list[ChatRequest]:
    return [
        ChatRequest.from_messages(
            [{"role": "system", "content": "Answer."}, {"role": "user", "content": f"What is the capital of Country{i}?" + " ok" * (i % 5)}],
            max_tokens=8,
        )
        for i in range(n)
    ]


def test_chat_template_is_used(tiny_model):
    from tunewise.models.hf_backend import HFModel

    model = HFModel(str(tiny_model), spec())
    text = model.render(requests(1)[0])
    assert text.startswith("<|system|>Answer.<|end|><|user|>What is the capital")
    assert text.endswith("<|assistant|>")


def test_batched_greedy_equals_one_at_a_time(tiny_model):
    from tunewise.models.hf_backend import HFModel

    async def answers(batch_size: int) -> tuple[list[str], list[int]]:
        model = HFModel(str(tiny_model), spec(batch_size=batch_size))
        results = await asyncio.gather(*(model.complete(r) for r in requests(12)))
        await model.aclose()
        return [r[0].text for r in results], [r[0].tokens_in for r in results]

    batched, batched_in = asyncio.run(answers(8))
    single, single_in = asyncio.run(answers(1))
    assert batched == single  # left padding must not change greedy answers
    assert batched_in == single_in  # padding is not counted as input tokens
    assert len(set(single_in)) > 1


def test_sampling_is_reproducible_per_request(tiny_model):
    from tunewise.models.hf_backend import HFModel

    model = HFModel(str(tiny_model), spec())
    request = ChatRequest.from_messages([{"role": "user", "content": "What is the capital of Country3?"}], temperature=1.0, max_tokens=8)
    first = asyncio.run(model.complete(request, n=4))
    again = asyncio.run(model.complete(request, n=4))
    assert [c.text for c in first] == [c.text for c in again]
    assert len({c.text for c in first}) > 1  # four samples, not one answer four times
    assert first[0].tokens_in > 0 and all(c.tokens_in == 0 for c in first[1:])  # prompt counted once


@pytest.mark.slow
def test_run_on_hf_model(tmp_path, tiny_model):
    task = write_capitals_task(tmp_path / "task", "http://unused", model={"uri": f"hf:{tiny_model}", "max_tokens": 8})
    text = task.read_text()
    task.write_text(text.replace("  base_url: http://unused\n", ""))
    outcome = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
    for arm in outcome.summary.arms:
        assert arm.n == 32 and arm.errors == 0
        assert arm.tokens_in > 10 and 0 < arm.tokens_out <= 8
    few, zero = outcome.summary.arms[1], outcome.summary.arms[0]
    assert few.tokens_in > zero.tokens_in
    again = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs2", use_cache=False))
    assert [a.score for a in again.summary.arms] == [a.score for a in outcome.summary.arms]


def test_samples_asked_for_later_are_new_ones(tiny_model, tmp_path):
    from tunewise.calls.cache import ResponseCache
    from tunewise.calls.caller import ModelCaller, Prices
    from tunewise.db import connect
    from tunewise.models.hf_backend import HFModel

    model = HFModel(str(tiny_model), spec())
    caller = ModelCaller(model, ResponseCache(connect(tmp_path / "db.sqlite")), prices=Prices(), run_id="r",
                         temperature=1.0, max_tokens=8)
    request = ChatRequest.from_messages([{"role": "user", "content": "What is the capital of Country5?"}], temperature=1.0, max_tokens=8)
    first = asyncio.run(caller.complete(request, 4, arm="a", example_id="e"))
    more = asyncio.run(caller.complete(request, 8, arm="a", example_id="e"))
    assert [s.text for s in more[:4]] == [s.text for s in first] and all(s.cached for s in more[:4])
    assert [s.text for s in more[4:]] != [s.text for s in first]  # seeded by sample number, not a replay
    assert more[4].tokens_in > 0  # the new request's prompt is paid for again
