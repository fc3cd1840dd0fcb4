"""The call log: one append-only row per model call a run made, fresh or from the cache, failed or not.

A row says which run, arm and example (or query) asked; the request's hash and the sample's number; the tokens,
latency and cost at that run's prices; whether it came from the cache; the error, if the call failed; and the
stored response it returned. `SELECT ... FROM calls WHERE run_id = ?` is a run's ledger.

A ModelCaller records its calls in a `CallSink`: the log itself (`CallLog`), or a buffer a Ray worker keeps for
the driver to write (`tunewise.calls.buffer.BufferedLog`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from tunewise.db import Database
from tunewise.models.base import Completion


@dataclass(frozen=True)
class Call:
    """Who asked for what: the run, the arm and the example or query, the request's key and the sample's number."""

    run_id: str
    arm: str
    example_id: str
    key: str
    sample: int


@dataclass(frozen=True)
class LoggedCall:
    """A row of the call log: the call, and what it returned (`completion`, its cost, whether it came from the
    cache and the stored response it is) or the `error` it failed with."""

    call: Call
    completion: Completion | None = None
    cost: float = 0.0
    cached: bool = False
    response_id: int | None = None
    error: str | None = None


class CallSink(ABC):
    """Where a ModelCaller records each call it made."""

    def answered(self, call: Call, completion: Completion, *, cost: float, cached: bool, response_id: int) -> None:
        self.add(LoggedCall(call, completion, cost, cached, response_id))

    def failed(self, call: Call, error: str) -> None:
        self.add(LoggedCall(call, error=error))

    @abstractmethod
    def add(self, row: LoggedCall) -> None:
        """Record one call."""


class CallLog(CallSink):
    """The `calls` table."""

    def __init__(self, db: Database):
        self.db = db

    def add(self, row: LoggedCall) -> None:
        call, completion = row.call, row.completion
        if completion is None:
            self.db.execute(
                "INSERT INTO calls (run_id, arm, example_id, key, sample, cache_hit, error) VALUES (?, ?, ?, ?, ?, 0, ?)",
                (call.run_id, call.arm, call.example_id, call.key, call.sample, row.error),
            )
            return
        self.db.execute(
            "INSERT INTO calls (run_id, arm, example_id, key, sample, cache_hit, tokens_in, tokens_out, latency_ms,"
            " cost, response_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (call.run_id, call.arm, call.example_id, call.key, call.sample, int(row.cached), completion.tokens_in,
             completion.tokens_out, completion.latency_ms, row.cost, row.response_id),
        )
