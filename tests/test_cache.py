"""The response cache: samples stored one by one, hits flagged, nothing secret in the key."""

from __future__ import annotations

import asyncio

import pytest

from tunewise.calls.cache import ResponseCache
from tunewise.calls.caller import ModelCaller, Prices
from tunewise.db import MIGRATIONS, connect
from tunewise.models.base import ChatRequest, Completion


class CountingModel:
    """A model double for cache accounting only; product code never ships one."""

    id = "test:counting"

    def __init__(self):
        self.sampled = 0

    async def complete(self, request, n=1, *, first=0):
        out = []
        for _ in range(n):
            self.sampled += 1
            out.append(Completion(f"answer {self.sampled}", 10, 2, 5.0))
        return out

    async def aclose(self):
        pass


def caller(tmp_path, model, read_cache=True):
    return ModelCaller(model, ResponseCache(connect(tmp_path / "db.sqlite")), prices=Prices(1.0, 2.0),
                       run_id="r", temperature=0.7, max_tokens=16, read_cache=read_cache)


REQ = ChatRequest.from_messages([{"role": "user", "content": "hi"}], temperature=0.7, max_tokens=16)


def test_samples_are_cached_one_by_one(tmp_path):
    model = CountingModel()
    c = caller(tmp_path, model)
    first = asyncio.run(c.complete(REQ, 2, arm="a", example_id="e"))
    more = asyncio.run(c.complete(REQ, 5, arm="a", example_id="e"))
    assert model.sampled == 5  # 2, then only the 3 missing
    assert [s.text for s in more[:2]] == [s.text for s in first]
    assert [s.cached for s in more] == [True, True, False, False, False]
    assert more[0].cost == first[0].cost == (10 * 1.0 + 2 * 2.0) / 1e6  # a hit keeps its original cost
    assert more[0].latency_ms == 5.0
    log = c.cache.db.execute("SELECT sample, cache_hit FROM calls ORDER BY id").fetchall()
    assert log == [(0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (3, 0), (4, 0)]


def test_identical_calls_in_flight_are_sent_once(tmp_path):
    model = CountingModel()
    c = caller(tmp_path, model)

    async def both():
        return await asyncio.gather(*(c.complete(REQ, 1, arm="a", example_id=str(i)) for i in range(5)))

    results = asyncio.run(both())
    assert model.sampled == 1
    assert {r[0].text for r in results} == {"answer 1"}


def test_no_cache_still_records(tmp_path):
    model = CountingModel()
    asyncio.run(caller(tmp_path, model).complete(REQ, 1, arm="a", example_id="e"))
    asyncio.run(caller(tmp_path, model, read_cache=False).complete(REQ, 1, arm="a", example_id="e"))
    assert model.sampled == 2
    cached = asyncio.run(caller(tmp_path, model).complete(REQ, 1, arm="a", example_id="e"))
    assert cached[0].text == "answer 2" and cached[0].cached


def test_cache_key_ignores_endpoint_and_secrets():
    key = REQ.cache_key("openai:gpt-x")
    assert key == ChatRequest.from_messages([{"role": "user", "content": "hi"}], temperature=0.7, max_tokens=16).cache_key("openai:gpt-x")
    assert key != REQ.cache_key("openai:gpt-y")
    assert key != ChatRequest.from_messages([{"role": "user", "content": "hi"}], temperature=0.0, max_tokens=16).cache_key("openai:gpt-x")


def test_migrations_apply_once_and_in_order(tmp_path):
    conn = connect(tmp_path / "db.sqlite")
    names = [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY rowid")]
    assert names == [name for name, _ in MIGRATIONS]
    conn.close()
    conn = connect(tmp_path / "db.sqlite")  # reopening applies nothing twice
    assert conn.execute("SELECT count(*) FROM _migrations").fetchone()[0] == len(MIGRATIONS)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"responses", "calls", "embeddings"} <= tables


class PromptOnceModel(CountingModel):
    """Bills the prompt on the first sample of each call only, as the real backends do."""

    async def complete(self, request, n=1, *, first=0):
        out = await super().complete(request, n, first=first)
        return [Completion(c.text, c.tokens_in if i == 0 else 0, c.tokens_out, c.latency_ms) for i, c in enumerate(out)]


def test_a_request_counts_its_prompt_once_even_when_drawn_in_two_calls(tmp_path):
    c = caller(tmp_path, PromptOnceModel())
    asyncio.run(c.for_example("a", "e").complete(REQ, 2))  # e.g. another arm's 2 samples, now cached
    lm = c.for_example("b", "e")
    samples = asyncio.run(lm.complete(REQ, 5))  # 2 cached + 3 fresh: the prompt was sent twice...
    assert sum(s.tokens_in for s in samples) == 20 and sum(s.cached for s in samples) == 2
    assert lm.usage.tokens_in == 10  # ...but this arm's request, alone, sends it once
    assert lm.usage.cost == pytest.approx((10 * 1.0 + 5 * 2 * 2.0) / 1e6)
    assert lm.usage.fresh_cost == pytest.approx((10 * 1.0 + 3 * 2 * 2.0) / 1e6)  # what this run did pay
