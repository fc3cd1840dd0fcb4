"""A worker's buffered cache and call log, written back by the driver: the same rows as calling directly."""

from __future__ import annotations

import asyncio
import sqlite3

import numpy as np
import pytest

from tunewise.calls.buffer import BufferedCache, BufferedLog, WriteBack
from tunewise.calls.cache import ResponseCache
from tunewise.calls.caller import ModelCaller, Prices
from tunewise.calls.log import CallLog
from tunewise.db import connect, connect_readonly
from tunewise.errors import ModelCallError
from tunewise.knowledge.embedder import Embedder
from tunewise.models.base import ChatRequest, Completion


class EchoModel:
    """A model double: echoes the prompt with the sample's number, fails on "fail"; product code never ships one."""

    id = "test:echo"

    def __init__(self):
        self.sent = 0

    async def complete(self, request, n=1, *, first=0):
        prompt = request.messages[-1][1]
        if prompt == "fail":
            raise ModelCallError("HTTP 500: boom")
        self.sent += n
        return [Completion(f"{prompt}#{first + i}", 3, 2, 1.5) for i in range(n)]

    async def aclose(self):
        pass


def request(prompt: str) -> ChatRequest:
    return ChatRequest.from_messages([{"role": "user", "content": prompt}], max_tokens=8)


def calling(cache, log=None) -> ModelCaller:
    return ModelCaller(EchoModel(), cache, prices=Prices(1.0, 2.0), run_id="r", temperature=0.0, max_tokens=8,
                       log=log)


async def answer_both(caller: ModelCaller) -> None:
    """Example a: one call cached by an earlier run, one new, one failing; example b: a's new call again (a cache
    hit) and two samples of another."""
    await caller.complete(request("old"), 1, arm="arm", example_id="a")
    await caller.complete(request("new"), 1, arm="arm", example_id="a")
    with pytest.raises(ModelCallError):
        await caller.complete(request("fail"), 1, arm="arm", example_id="a")
    await caller.complete(request("new"), 1, arm="arm", example_id="b")
    await caller.complete(request("more"), 2, arm="arm", example_id="b")


def ledger(db) -> list[tuple]:
    return sorted(db.execute(
        "SELECT c.example_id, c.key, c.sample, c.cache_hit, c.tokens_in, c.tokens_out, c.cost, c.error, r.text, r.key"
        " FROM calls c LEFT JOIN responses r ON r.id = c.response_id WHERE c.run_id = 'r'").fetchall(), key=repr)


def counts(db) -> tuple[int, int]:
    return (db.execute("SELECT count(*) FROM responses").fetchone()[0],
            db.execute("SELECT count(*) FROM calls").fetchone()[0])


def earlier_run(path):
    db = connect(path)
    asyncio.run(ModelCaller(EchoModel(), ResponseCache(db), prices=Prices(), run_id="before", temperature=0.0,
                            max_tokens=8).complete(request("old"), 1, arm="arm", example_id="x"))
    return db


def test_written_back_out_of_order_the_rows_are_those_of_calling_directly(tmp_path):
    direct = earlier_run(tmp_path / "direct.sqlite")
    asyncio.run(answer_both(calling(ResponseCache(direct))))

    db = earlier_run(tmp_path / "driver.sqlite")
    before = counts(db)
    cache, log = BufferedCache(connect_readonly(db.path)), BufferedLog()
    worker = calling(cache, log)
    asyncio.run(answer_both(worker))
    assert counts(db) == before  # the worker wrote nothing
    assert worker.model.sent == 3  # "old" came from the database, the second "new" from the buffer

    b = cache.writes(log.take("arm", "b"))  # b's answer first: it carries every response not handed over yet
    a = cache.writes(log.take("arm", "a"))  # a's carries again the one its call points at
    assert [r.completion.text for r in b.responses] == ["new#0", "more#0", "more#1"]
    assert [r.completion.text for r in a.responses] == ["new#0"]
    back = WriteBack(ResponseCache(db), CallLog(db))
    back.write(b)
    back.write(a)
    assert counts(db) == counts(direct)  # "new" stored once
    assert ledger(db) == ledger(direct)
    assert log.take("arm", "a") == []  # handed over once


def test_a_buffered_response_is_what_the_cache_returns(tmp_path):
    db = earlier_run(tmp_path / "db.sqlite")
    cache = BufferedCache(connect_readonly(db.path))
    key = request("old").cache_key(EchoModel.id)
    assert [s.completion.text for s in cache.get(key, 1).values()] == ["old#0"]
    provisional = cache.put(key, 0, EchoModel.id, request("old"), Completion("newer", 1, 1, 1.0))
    assert provisional < 0 and cache.get(key, 1)[0].completion.text == "newer"


def test_a_readonly_database_refuses_writes_and_its_embeddings_are_not_stored(tmp_path):
    db = connect(tmp_path / "db.sqlite")
    readonly = connect_readonly(db.path)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        readonly.execute("INSERT INTO embeddings VALUES ('e', 'h', x'00')")

    class Lengths(Embedder):
        max_seq_length = 64
        tokenizer_file = None

        def _compute(self, texts):
            return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    embedder = Lengths(readonly, "lengths")
    assert embedder.embed(["ab", "abc"]).tolist() == [[2.0, 1.0], [3.0, 1.0]]
    assert db.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 0
    with pytest.raises(FileNotFoundError):
        connect_readonly(tmp_path / "missing.sqlite")
