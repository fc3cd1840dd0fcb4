"""Parts of the OpenAI backend that the end-to-end tests cannot pin down exactly."""

from __future__ import annotations

import asyncio
import email.utils
import time

import httpx
import pytest

from tunewise.errors import InputError
from tunewise.models.base import ChatRequest
from tunewise.models.openai_backend import OpenAIModel
from tunewise.models.openai_client import retry_after_seconds
from tunewise.spec import ModelSpec


def test_retry_after_forms():
    assert retry_after_seconds(httpx.Headers({"retry-after-ms": "250"})) == 0.25
    assert retry_after_seconds(httpx.Headers({"retry-after": "3"})) == 3.0
    date = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8 <= retry_after_seconds(httpx.Headers({"retry-after": date})) <= 10.5
    assert retry_after_seconds(httpx.Headers({})) is None


def test_missing_key_for_the_real_api_is_an_input_error(monkeypatch):
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(InputError, match="MY_KEY is not set"):
        OpenAIModel(ModelSpec(uri="openai:gpt-x", api_key_env="MY_KEY"))


def test_n_samples_and_prompt_billed_once(server):
    model = OpenAIModel(ModelSpec(uri="openai:scripted", base_url=server.base_url))
    req = ChatRequest.from_messages([{"role": "user", "content": "What is the capital of Alania?"}], temperature=1.0)
    out = asyncio.run(model.complete(req, n=3))
    assert len(out) == 3 and len(server.log.entries) == 1
    assert out[0].tokens_in > 0 and out[1].tokens_in == out[2].tokens_in == 0


def test_a_streamed_answer_is_the_answer_and_its_usage_corrects_the_estimate(server):
    model = OpenAIModel(ModelSpec(uri="openai:scripted", base_url=server.base_url))
    req = ChatRequest.from_messages([{"role": "user", "content": "What is the capital of Alania? " + "x" * 40}])

    async def both():
        whole = (await model.complete(req))[0]
        pieces = [p async for p in model.stream(req)]
        await model.aclose()
        return whole, pieces

    whole, pieces = asyncio.run(both())
    assert "".join(p.text for p in pieces) == whole.text
    assert pieces[0].tokens_in == 18  # estimated: 71 characters at 4 a token, until the usage chunk says 7
    assert sum(p.tokens_in for p in pieces) == whole.tokens_in == 7
    assert sum(p.tokens_out for p in pieces) == whole.tokens_out


def test_a_stream_that_cannot_start_is_a_model_call_error(server):
    from tunewise.errors import ModelCallError

    model = OpenAIModel(ModelSpec(uri="openai:scripted", base_url=server.base_url + "/nowhere"))

    async def first_piece():
        async for piece in model.stream(ChatRequest.from_messages([{"role": "user", "content": "x"}])):
            return piece

    with pytest.raises(ModelCallError) as e:
        asyncio.run(first_piece())
    assert e.value.status == 404


def test_client_errors_are_not_retried(server):
    model = OpenAIModel(ModelSpec(uri="openai:scripted", base_url=server.base_url + "/nowhere"))
    from tunewise.errors import ModelCallError

    with pytest.raises(ModelCallError) as e:
        asyncio.run(model.complete(ChatRequest.from_messages([{"role": "user", "content": "x"}])))
    assert e.value.status == 404 and not e.value.retryable
    assert model.retries == 0
