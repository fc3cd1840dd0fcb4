"""Response cache in SQLite, keyed by request hash and sample index.

Sampled answers are stored one by one, so asking for 8 samples after 4 were cached pays for 4.
A hit returns the original latency and cost; callers count hits apart from fresh calls.
"""

from __future__ import annotations

from tunewise.db import Database
from tunewise.models.base import ChatRequest, Completion


class ResponseCache:
    """Stored completions plus a log of every call a run made (hit or not)."""

    def __init__(self, db: Database):
        self.db = db

    def get(self, key: str, n: int) -> dict[int, tuple[Completion, float]]:
        """Cached samples 0..n-1 of a request that exist, as {index: (completion, cost)}."""
        rows = self.db.execute(
            "SELECT sample, text, tokens_in, tokens_out, latency_ms, finish_reason, cost"
            " FROM responses WHERE key = ? AND sample < ?",
            (key, n),
        )
        return {row[0]: (Completion(row[1], row[2], row[3], row[4], row[5]), row[6]) for row in rows}

    def put(self, key: str, sample: int, model_id: str, request: ChatRequest, completion: Completion, cost: float) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO responses"
            " (key, sample, model, request, text, tokens_in, tokens_out, latency_ms, finish_reason, cost)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                sample,
                model_id,
                request.json,
                completion.text,
                completion.tokens_in,
                completion.tokens_out,
                completion.latency_ms,
                completion.finish_reason,
                cost,
            ),
        )

    def log_call(self, run_id: str, arm: str, example_id: str, key: str, sample: int, cache_hit: bool) -> None:
        self.db.execute(
            "INSERT INTO calls (run_id, arm, example_id, key, sample, cache_hit) VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, arm, example_id, key, sample, int(cache_hit)),
        )
