"""Response cache in SQLite: append-only rows keyed by request hash and sample index.

Sampled answers are stored one by one, so asking for 8 samples after 4 were cached pays for 4. A row is never
changed: a run that does not read the cache adds newer answers, which later runs are served, while the calls
of older runs keep pointing at the rows they got. Rows hold tokens, not money: a run prices them itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunewise.db import Database
from tunewise.models.base import ChatRequest, Completion


@dataclass(frozen=True)
class Stored:
    """A cached completion and its row in `responses`."""

    id: int
    completion: Completion


class ResponseCache:
    """Stored completions, by request key and sample index."""

    def __init__(self, db: Database):
        self.db = db

    def get(self, key: str, n: int) -> dict[int, Stored]:
        """The newest stored answer of each of samples 0..n-1 that exist."""
        rows = self.db.execute(
            "SELECT id, sample, text, tokens_in, tokens_out, latency_ms, finish_reason"
            " FROM responses WHERE key = ? AND sample < ? ORDER BY id",
            (key, n),
        )
        return {row[1]: Stored(row[0], Completion(row[2], row[3], row[4], row[5], row[6])) for row in rows}

    def put(self, key: str, sample: int, model_id: str, request: ChatRequest, completion: Completion) -> int:
        """Store an answer; returns its row id."""
        cursor = self.db.execute(
            "INSERT INTO responses"
            " (key, sample, model, request, text, tokens_in, tokens_out, latency_ms, finish_reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, sample, model_id, request.json, completion.text, completion.tokens_in, completion.tokens_out,
             completion.latency_ms, completion.finish_reason),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid
