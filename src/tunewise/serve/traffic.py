"""Served traffic is data: every served request is a row of the append-only `served` table, and the queries
can be exported as a data file of the task's input fields, ready to label and evaluate in the next run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.db import Database


@dataclass(frozen=True)
class Served:
    """One served request: who asked (a key's id, never the key), what came of it, what it took."""

    run_id: str
    arm: str
    request_id: str
    key_id: str | None
    status: int
    latency_ms: float
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    error: str | None = None
    fields: dict[str, Any] | None = None
    answer: str | None = None


def record(db: Database, served: Served) -> None:
    db.execute(
        "INSERT INTO served (run_id, arm, request_id, key_id, status, error, latency_ms, tokens_in, tokens_out, cost,"
        " fields, answer) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (served.run_id, served.arm, served.request_id, served.key_id, served.status, served.error, served.latency_ms,
         served.tokens_in, served.tokens_out, served.cost,
         None if served.fields is None else json.dumps(served.fields, ensure_ascii=False), served.answer),
    )


def export(db: Database, run_id: str, out: Path, *, arm: str | None = None) -> int:
    """Write the queries served for `run_id` (answered ones, oldest first, each once) as JSONL: the request id as
    `id` and the task's input fields, the answer given as `served_answer`. Returns how many were written."""
    sql = "SELECT request_id, fields, answer FROM served WHERE run_id = ? AND status = 200 AND fields IS NOT NULL"
    params: list[Any] = [run_id]
    if arm is not None:
        sql += " AND arm = ?"
        params.append(arm)
    seen: set[str] = set()
    lines = []
    for request_id, fields, answer in db.execute(sql + " ORDER BY id", params):
        key = fields
        if key in seen:
            continue
        seen.add(key)
        lines.append(json.dumps({"id": request_id, **json.loads(fields), "served_answer": answer}, ensure_ascii=False))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)
