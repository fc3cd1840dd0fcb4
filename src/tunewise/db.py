"""The SQLite database behind the response cache, the call log and the embedding cache.

Schema changes are append-only named migrations, recorded in the `_migrations` table.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

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
    (
        # Responses become append-only rows with an id: a --no-cache run adds a newer answer (which the cache
        # then serves) instead of rewriting the one older runs' calls point at. Their cost was priced when stored;
        # what a call cost is now the call log's, and a run prices answers from their tokens.
        "m004_responses_append_only",
        """
        CREATE TABLE responses_log (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            sample INTEGER NOT NULL,
            model TEXT NOT NULL,
            request TEXT NOT NULL,
            text TEXT NOT NULL,
            tokens_in INTEGER NOT NULL,
            tokens_out INTEGER NOT NULL,
            latency_ms REAL NOT NULL,
            finish_reason TEXT NOT NULL,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        );
        INSERT INTO responses_log
            (key, sample, model, request, text, tokens_in, tokens_out, latency_ms, finish_reason, created_at)
            SELECT key, sample, model, request, text, tokens_in, tokens_out, latency_ms, finish_reason, created_at
            FROM responses ORDER BY created_at, key, sample;
        DROP TABLE responses;
        ALTER TABLE responses_log RENAME TO responses;
        CREATE INDEX responses_key ON responses (key, sample, id);
        CREATE TRIGGER responses_never_updated BEFORE UPDATE ON responses
            BEGIN SELECT RAISE(ABORT, 'responses are append-only'); END;
        CREATE TRIGGER responses_never_deleted BEFORE DELETE ON responses
            BEGIN SELECT RAISE(ABORT, 'responses are append-only'); END
        """,
    ),
    (
        # The call log becomes a ledger: what each call took and cost at the time, whether it came from the cache,
        # its error, and which stored response it returned. Rows of older runs keep nulls where they knew nothing.
        "m005_call_ledger",
        """
        ALTER TABLE calls ADD COLUMN tokens_in INTEGER;
        ALTER TABLE calls ADD COLUMN tokens_out INTEGER;
        ALTER TABLE calls ADD COLUMN latency_ms REAL;
        ALTER TABLE calls ADD COLUMN cost REAL;
        ALTER TABLE calls ADD COLUMN error TEXT;
        ALTER TABLE calls ADD COLUMN response_id INTEGER REFERENCES responses (id);
        CREATE TRIGGER calls_never_updated BEFORE UPDATE ON calls
            BEGIN SELECT RAISE(ABORT, 'the call log is append-only'); END;
        CREATE TRIGGER calls_never_deleted BEFORE DELETE ON calls
            BEGIN SELECT RAISE(ABORT, 'the call log is append-only'); END
        """,
    ),
    (
        # What `tunewise serve` answered: one append-only row per served request (the key's id, never the key).
        "m006_served",
        """
        CREATE TABLE served (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL,
            arm TEXT NOT NULL,
            request_id TEXT NOT NULL,
            key_id TEXT,
            status INTEGER NOT NULL,
            error TEXT,
            latency_ms REAL NOT NULL,
            tokens_in INTEGER NOT NULL,
            tokens_out INTEGER NOT NULL,
            cost REAL NOT NULL,
            fields TEXT,
            answer TEXT,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        );
        CREATE INDEX served_run ON served (run_id, arm);
        CREATE TRIGGER served_never_updated BEFORE UPDATE ON served
            BEGIN SELECT RAISE(ABORT, 'the traffic log is append-only'); END;
        CREATE TRIGGER served_never_deleted BEFORE DELETE ON served
            BEGIN SELECT RAISE(ABORT, 'the traffic log is append-only'); END
        """,
    ),
]


def statements(sql: str) -> list[str]:
    """The statements of a migration, split where SQLite says one is complete (so a trigger's body stays whole)."""
    out, current = [], ""
    for part in sql.split(";"):
        current += part + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \n;"):
                out.append(current.strip())
            current = ""
    return out


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
            for statement in statements(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO _migrations VALUES (?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))", (name,))
        applied.append(name)
    return applied


class Database:
    """The SQLite file, with one connection per thread.

    A sqlite3 connection holds one transaction at a time: shared between the event loop's thread (cache rows)
    and worker threads (embeddings written in a transaction), the loop's writes would land inside, or be
    rolled back with, a worker's transaction. Each thread gets a connection of its own instead, in WAL mode,
    so readers never wait and writers queue on SQLite's lock (`timeout`).

    `readonly` opens it for reading only (a Ray worker reads the cache that the driver alone writes): nothing is
    migrated, and every write fails."""

    def __init__(self, path: Path, *, timeout: float = 30.0, readonly: bool = False):
        self.path = path
        self.timeout = timeout
        self.readonly = readonly
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[sqlite3.Connection] = []
        if not readonly:
            migrate(self.conn)

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use (autocommit: `transaction` groups statements)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # check_same_thread=False only so that `close` may close it from another thread once it is idle.
            if self.readonly:
                conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                                       timeout=self.timeout, check_same_thread=False)
            else:
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.timeout, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._lock:
                self._open.append(conn)
        return conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> sqlite3.Cursor:
        return self.conn.executemany(sql, rows)

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """A transaction on this thread's connection."""
        return transaction(self.conn)

    def close(self) -> None:
        """Close every thread's connection (call when no thread uses the database any more)."""
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            conn.close()
        self._local = threading.local()


def connect(path: Path) -> Database:
    """Open (creating on first use, migrating to the current schema) the database; WAL, so a killed run never
    corrupts it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return Database(path)


def connect_readonly(path: Path) -> Database:
    """Open an existing database for reading only; FileNotFoundError when there is none at `path`."""
    if not path.is_file():
        raise FileNotFoundError(path)
    return Database(path, readonly=True)
