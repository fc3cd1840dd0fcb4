"""The SQLite database behind the response cache, the call log and the embedding cache.

Schema changes are append-only named migrations, recorded in the `_migrations` table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MIGRATIONS: list[tuple[str, str]] = [
    (
        "m001_responses",
        """
        CREATE TABLE responses (
            key TEXT NOT NULL,
            sample INTEGER NOT NULL,
            model TEXT NOT NULL,
            request TEXT NOT NULL,
            text TEXT NOT NULL,
            tokens_in INTEGER NOT NULL,
            tokens_out INTEGER NOT NULL,
            latency_ms REAL NOT NULL,
            finish_reason TEXT NOT NULL,
            cost REAL NOT NULL,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            PRIMARY KEY (key, sample)
        )
        """,
    ),
    (
        "m002_calls",
        """
        CREATE TABLE calls (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL,
            arm TEXT NOT NULL,
            example_id TEXT NOT NULL,
            key TEXT NOT NULL,
            sample INTEGER NOT NULL,
            cache_hit INTEGER NOT NULL,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        );
        CREATE INDEX calls_run ON calls (run_id, arm)
        """,
    ),
    (
        "m003_embeddings",
        """
        CREATE TABLE embeddings (
            embedder TEXT NOT NULL,
            hash TEXT NOT NULL,
            vector BLOB NOT NULL,
            PRIMARY KEY (embedder, hash)
        )
        """,
    ),
]


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One explicit transaction on an autocommit connection: all of it lands, or none."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations this database lacks, in order; returns the names applied."""
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    applied = []
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        with transaction(conn):
            for statement in sql.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO _migrations VALUES (?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))", (name,))
        applied.append(name)
    return applied


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating on first use) the database; WAL so a killed run never corrupts it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    migrate(conn)
    return conn
