"""The `hf:` backend on a tiny GPT-2 the test builds itself (no hub)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest
from capitals import write_capitals_task
from tiny_gpt2 import build_tiny_gpt2

import tunewise
from tunewise.evaluation.experiment import RunOptions
from tunewise.models.base import ChatRequest, Completion, Piece
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


@pytest.fixture(scope="module")
def wordy_model(tmp_path_factory) -> Path:
    """A tiny GPT-2 whose greedy answers are text (the `tiny_model` one answers every prompt with a special token):
    repeated two-character tokens, and byte tokens that are no whole character."""
    corpus = [f"What is the capital of Country{i}? The capital is City{i}." for i in range(300)]
    return build_tiny_gpt2(tmp_path_factory.mktemp("wordy-gpt2"), CHAT_TEMPLATE, corpus, seed=2)


async def streamed(model, request: ChatRequest, sample: int = 0) -> tuple[str, int, int, int]:
    """A stream's text, tokens out, tokens in (all on the first piece) and how many pieces it came in."""
    pieces = [p async for p in model.stream(request, sample=sample)]
    assert all(p.tokens_in == 0 for p in pieces[1:])
    return "".join(p.text for p in pieces), sum(p.tokens_out for p in pieces), pieces[0].tokens_in, len(pieces)


def test_greedy_stream_is_the_completion(wordy_model):
    from tunewise.models.base import StreamingModel
    from tunewise.models.hf_backend import HFModel

    model = HFModel(str(wordy_model), spec())
    assert isinstance(model, StreamingModel)

    async def both(request: ChatRequest) -> tuple[Completion, tuple[str, int, int, int]]:
        return (await model.complete(request))[0], await streamed(model, request)

    for request in [replace(r, max_tokens=24) for r in requests(3)]:
        completion, (text, tokens_out, tokens_in, pieces) = asyncio.run(both(request))
        assert text == completion.text and text.strip()
        assert (tokens_out, tokens_in) == (completion.tokens_out, completion.tokens_in) and tokens_out == 24
        assert pieces >= 24  # a piece per token, not the answer at the end
    # "38" is one token here: the stop string "83" spans two, so the "8" before it must be held back, not sent.
    request = replace(requests(2)[1], max_tokens=24, stop=("83",))
    completion, (text, tokens_out, _, _) = asyncio.run(both(request))
    assert completion.text == text == "3"
    assert tokens_out == 2 < completion.tokens_out  # the stream stops at the stop string; complete goes on


def test_sampled_stream_is_the_completion_of_its_number(tiny_model):
    from tunewise.models.hf_backend import HFModel

    model = HFModel(str(tiny_model), spec())

    async def both(request: ChatRequest, k: int) -> tuple[Completion, tuple[str, int, int, int]]:
        return (await model.complete(request, 1, first=k))[0], await streamed(model, request, k)

    # Which samples of a random model end on eos is luck, and changes with torch and transformers: enough
    # samples are looked at that both endings turn up (about 1 in 5 ends on eos within 48 tokens here).
    texts, finishes = [], set()
    for request in [replace(r, temperature=1.0, max_tokens=48) for r in requests(4)]:
        for k in range(6):
            completion, (text, tokens_out, tokens_in, _) = asyncio.run(both(request, k))
            assert (text, tokens_out, tokens_in) == (completion.text, completion.tokens_out, completion.tokens_in)
            texts.append(text)
            finishes.add(completion.finish_reason)
    assert len(set(texts)) == len(texts)  # each sample number its own sample
    assert finishes == {"stop", "length"}  # samples that end on eos (a token counted too) and at max_tokens


def test_closing_a_stream_stops_the_generation(tiny_model):
    from tunewise.models.hf_backend import HFModel

    model = HFModel(str(tiny_model), spec())
    forward, generate = model.model.forward, model.model.generate
    steps: list[int] = []
    returned: list[bool] = []

    def slow_forward(*args, **kwargs):
        steps.append(1)
        time.sleep(0.005)  # a token in 5 ms: 64 of them would take long after the stream is closed
        return forward(*args, **kwargs)

    def watched_generate(*args, **kwargs):
        out = generate(*args, **kwargs)
        returned.append(True)
        return out

    request = replace(requests(2)[1], temperature=1.0, max_tokens=64)
    sample = next(k for k in range(20) if asyncio.run(model.complete(request, 1, first=k))[0].finish_reason == "length")
    model.model.forward, model.model.generate = slow_forward, watched_generate

    async def close_after_two() -> list[Piece]:
        stream = model.stream(request, sample=sample)
        pieces = [await anext(stream), await anext(stream)]
        await stream.aclose()
        assert returned == [True]  # generate had returned when aclose did: nothing generates behind the stream
        return pieces

    _, tokens_out, _, _ = asyncio.run(streamed(model, request, sample))
    assert tokens_out == 64 and len(steps) >= 64  # left alone, this sample runs to max_tokens
    steps.clear()
    returned.clear()
    pieces = asyncio.run(close_after_two())
    assert sum(p.tokens_out for p in pieces) == 2
    generated = len(steps)
    time.sleep(0.1)
    assert generated == len(steps) < 10  # halted at the next token, not run on to 64
