"""The response cache: samples stored one by one, hits flagged, nothing secret in the key."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from tunewise.calls.cache import ResponseCache
from tunewise.calls.caller import ModelCaller, Prices
from tunewise.db import MIGRATIONS, connect, statements
from tunewise.errors import ModelCallError
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


def caller(tmp_path, model, read_cache=True, prices=Prices(1.0, 2.0), run_id="r"):
    return ModelCaller(model, ResponseCache(connect(tmp_path / "db.sqlite")), prices=prices,
                       run_id=run_id, temperature=0.7, max_tokens=16, read_cache=read_cache)


REQ = ChatRequest.from_messages([{"role": "user", "content": "hi"}], temperature=0.7, max_tokens=16)


def test_samples_are_cached_one_by_one(tmp_path):
    model = CountingModel()
    c = caller(tmp_path, model)
    first = asyncio.run(c.complete(REQ, 2, arm="a", example_id="e"))
    more = asyncio.run(c.complete(REQ, 5, arm="a", example_id="e"))
    assert model.sampled == 5  # 2, then only the 3 missing
    assert [s.text for s in more[:2]] == [s.text for s in first]
    assert [s.cached for s in more] == [True, True, False, False, False]
    assert more[0].cost == first[0].cost == (10 * 1.0 + 2 * 2.0) / 1e6  # priced from tokens, at this run's prices
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


def test_a_cached_answer_costs_what_the_reading_run_prices_say(tmp_path):
    model = CountingModel()
    asyncio.run(caller(tmp_path, model, prices=Prices(1.0, 2.0), run_id="old").complete(REQ, 1, arm="a", example_id="e"))
    lm = caller(tmp_path, model, prices=Prices(3.0, 5.0), run_id="new").for_example("a", "e")
    (sample,) = asyncio.run(lm.complete(REQ, 1))
    assert sample.cached and model.sampled == 1
    assert sample.cost == lm.usage.cost == (10 * 3.0 + 2 * 5.0) / 1e6
    assert lm.usage.fresh_cost == 0.0  # nothing was paid for it in this run
    ledger = lm.caller.cache.db.execute("SELECT run_id, cost, cache_hit FROM calls ORDER BY id").fetchall()
    assert ledger == [("old", (10 * 1.0 + 2 * 2.0) / 1e6, 0), ("new", (10 * 3.0 + 2 * 5.0) / 1e6, 1)]


def test_responses_are_never_overwritten_and_the_ledger_points_at_what_each_run_got(tmp_path):
    model = CountingModel()
    asyncio.run(caller(tmp_path, model, run_id="first").complete(REQ, 1, arm="a", example_id="e"))
    asyncio.run(caller(tmp_path, model, read_cache=False, run_id="no-cache").complete(REQ, 1, arm="a", example_id="e"))
    c = caller(tmp_path, model, run_id="later")
    (served,) = asyncio.run(c.complete(REQ, 1, arm="a", example_id="e"))
    assert served.text == "answer 2" and served.cached  # the newest answer is the one served
    db = c.cache.db
    rows = db.execute(
        "SELECT calls.run_id, responses.text FROM calls JOIN responses ON responses.id = calls.response_id"
        " ORDER BY calls.id").fetchall()
    assert rows == [("first", "answer 1"), ("no-cache", "answer 2"), ("later", "answer 2")]
    for sql in ("UPDATE responses SET text = 'x'", "DELETE FROM responses", "UPDATE calls SET cost = 0",
                "DELETE FROM calls"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute(sql)


def test_the_ledger_has_a_row_for_every_call_failed_ones_too(tmp_path):
    class Failing(CountingModel):
        async def complete(self, request, n=1, *, first=0):
            raise ModelCallError("HTTP 401: bad key", status=401)

    c = caller(tmp_path, Failing(), run_id="r1")
    with pytest.raises(ModelCallError):
        asyncio.run(c.complete(REQ, 2, arm="a", example_id="e7"))
    asyncio.run(caller(tmp_path, CountingModel(), run_id="r2").complete(REQ, 1, arm="b", example_id="q1"))
    rows = c.cache.db.execute(
        "SELECT run_id, arm, example_id, key, sample, cache_hit, tokens_in, tokens_out, latency_ms, cost, error,"
        " response_id FROM calls ORDER BY id").fetchall()
    key = REQ.cache_key("test:counting")
    assert rows[:2] == [("r1", "a", "e7", key, i, 0, None, None, None, None, "HTTP 401: bad key", None) for i in (0, 1)]
    assert rows[2][:10] == ("r2", "b", "q1", key, 0, 0, 10, 2, 5.0, (10 * 1.0 + 2 * 2.0) / 1e6)
    assert rows[2][10] is None and isinstance(rows[2][11], int)


def test_a_database_of_the_previous_schema_is_migrated_keeping_its_answers(tmp_path):
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, sql in MIGRATIONS[:3]:  # the schema of every database written before the ledger
        for statement in statements(sql):
            old.execute(statement)
        old.execute("INSERT INTO _migrations VALUES (?, 'then')", (name,))
    key = REQ.cache_key("test:counting")
    old.execute("INSERT INTO responses (key, sample, model, request, text, tokens_in, tokens_out, latency_ms,"
                " finish_reason, cost) VALUES (?, 0, 'test:counting', ?, 'old answer', 7, 3, 9.0, 'stop', 0.25)",
                (key, REQ.json))
    old.execute("INSERT INTO calls (run_id, arm, example_id, key, sample, cache_hit) VALUES ('r0', 'a', 'e', ?, 0, 0)",
                (key,))
    old.close()
    db = connect(path)
    assert [r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY rowid")] == [n for n, _ in MIGRATIONS]
    assert db.execute("SELECT run_id, cost, error FROM calls").fetchall() == [("r0", None, None)]
    c = ModelCaller(CountingModel(), ResponseCache(db), prices=Prices(1.0, 1.0), run_id="r1", temperature=0.7,
                    max_tokens=16)
    (sample,) = asyncio.run(c.complete(REQ, 1, arm="a", example_id="e"))
    assert sample.text == "old answer" and sample.cached and sample.cost == (7 + 3) / 1e6  # priced now, from tokens


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
