"""What a Ray worker would write to the response cache and the call log, kept for the one process that writes.

A worker reads the cache (its database opened read-only) and writes nothing: `BufferedCache` keeps the responses
it fetches (and serves them back to its later calls, as the cache would) and `BufferedLog` its call-log rows, by
example. An answer travels to the driver with its `Writes`, and the driver's `WriteBack` writes them: responses
first, each once, then the calls, pointing at the rows the responses got.

    worker:  ModelCaller(model, BufferedCache(read-only db), log=BufferedLog())
             writes = cache.writes(log.take(arm, example_id))       -> sent with the answer
    driver:  WriteBack(cache, log).write(writes)                     -> responses, then calls, one transaction
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from tunewise.calls.cache import ResponseCache, Stored
from tunewise.calls.log import CallSink, LoggedCall
from tunewise.db import Database
from tunewise.models.base import ChatRequest, Completion


@dataclass(frozen=True)
class PendingResponse:
    """A response fetched but not stored yet; `id` stands for its row until it has one (negative, unique in its
    buffer)."""

    id: int
    key: str
    sample: int
    model_id: str
    request: ChatRequest
    completion: Completion


@dataclass(frozen=True)
class Writes:
    """One answer's writes: its calls, the pending responses they point at and every other response its buffer had
    not handed over yet (a response paid for is never dropped). `buffer` names the buffer the ids are of."""

    buffer: str
    responses: tuple[PendingResponse, ...]
    calls: tuple[LoggedCall, ...]


class BufferedCache(ResponseCache):
    """The response cache read from `db`, with the responses fetched through this one kept in memory instead of
    written (newer than any row, so they are what `get` returns)."""

    def __init__(self, db: Database):
        super().__init__(db)
        self.buffer = uuid.uuid4().hex
        self._pending: dict[int, PendingResponse] = {}
        self._by_key: dict[str, dict[int, Stored]] = defaultdict(dict)
        self._unsent: list[int] = []

    def get(self, key: str, n: int) -> dict[int, Stored]:
        found = super().get(key, n)
        found.update((sample, stored) for sample, stored in self._by_key.get(key, {}).items() if sample < n)
        return found

    def put(self, key: str, sample: int, model_id: str, request: ChatRequest, completion: Completion) -> int:
        pending = PendingResponse(-(len(self._pending) + 1), key, sample, model_id, request, completion)
        self._pending[pending.id] = pending
        self._by_key[key][sample] = Stored(pending.id, completion)
        self._unsent.append(pending.id)
        return pending.id

    def writes(self, calls: Sequence[LoggedCall]) -> Writes:
        """The writes of an answer whose calls are `calls`."""
        wanted = set(self._unsent) | {c.response_id for c in calls if c.response_id is not None and c.response_id < 0}
        self._unsent = []
        return Writes(self.buffer, tuple(self._pending[i] for i in sorted(wanted, reverse=True)), tuple(calls))


class BufferedLog(CallSink):
    """Call-log rows kept by (arm, example) until the example's answer takes them."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], list[LoggedCall]] = defaultdict(list)

    def add(self, row: LoggedCall) -> None:
        self._rows[(row.call.arm, row.call.example_id)].append(row)

    def take(self, arm: str, example_id: str) -> list[LoggedCall]:
        """The rows of this example's calls, handed over (they are not kept)."""
        return self._rows.pop((arm, example_id), [])


class WriteBack:
    """Workers' `Writes` written to the cache and the call log: each pending response stored once (an answer
    may carry one an earlier answer stored), and the calls pointing at the rows they got."""

    def __init__(self, cache: ResponseCache, log: CallSink):
        self.cache = cache
        self.log = log
        self._rows: dict[tuple[str, int], int] = {}

    def write(self, writes: Writes) -> None:
        """Store `writes` in one transaction: all of it lands, or none."""
        rows: dict[tuple[str, int], int] = {}
        with self.cache.db.transaction():
            for r in writes.responses:
                name = (writes.buffer, r.id)
                if name not in self._rows:
                    rows[name] = self.cache.put(r.key, r.sample, r.model_id, r.request, r.completion)
            for call in writes.calls:
                if call.response_id is not None and call.response_id < 0:
                    name = (writes.buffer, call.response_id)
                    call = replace(call, response_id=rows.get(name) or self._rows[name])
                self.log.add(call)
        self._rows.update(rows)
