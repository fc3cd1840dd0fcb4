"""A chunk store in PostgreSQL with pgvector: one table per index, an HNSW index over the vectors.

psycopg and pgvector are imported on first use. The password is never part of the URL: libpq reads it from
PGPASSWORD or ~/.pgpass.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from tunewise.knowledge.chunker import Chunk
from tunewise.knowledge.stores import StoreError, public_location
from tunewise.knowledge.stores.base import COLUMNS, VECTOR_BATCH, ChunkStore, vector_matrix

PREFIX = "tunewise_chunks_"
# HNSW graph: pgvector's defaults. At 100k x 384 (bench/postgres.py) ef_construction 128 built 2-3x as long and
# added 0.002-0.03 recall@10 at ef_search 40-200.
M = 16
EF_CONSTRUCTION = 64
# Candidates an HNSW scan keeps; pgvector returns at most this many rows, and caps it at 1,000. At 100k x 384
# clustered vectors, recall@10: 0.93-0.95 at pgvector's default 40, 0.985-0.991 at 100, 0.992-0.993 at 200 (two
# builds); on data as hard as ENVIRONMENT.md's (0.89 at 40) 0.954 at 200 and 0.987 at 1,000 (bench/postgres.py).
EF_SEARCH = 200
MAX_EF_SEARCH = 1000
# Query settings tried in turn while recall@10 on the sampled rows falls short of min_recall (cheapest first).
TUNINGS: list[dict[str, int]] = [{"ef_search": EF_SEARCH}, {"ef_search": 400}, {"ef_search": MAX_EF_SEARCH}]
CONNECT_TIMEOUT_S = 10
_DELETE_BATCH = 1000
_READ_BATCH = 10_000
_TYPES = {"id": "text", "doc_id": "text", "doc_hash": "text", "source": "text", "text": "text", "hash": "text",
          "n_tokens": "int4"}  # fmt: skip
# Longest name left for an index's own part: PostgreSQL cuts identifiers at 63 bytes, and `<table>_doc_id`
# must stay distinct from another index's.
_NAME_MAX = 63 - len(PREFIX) - len("_doc_id")


def table_name(index_name: str) -> str:
    """`tunewise_chunks_<index_name>`, lower-cased, other characters than [a-z0-9_] as `_`; a long name is cut and
    ends with a hash of the whole, so two indexes never share a table."""
    name = re.sub(r"[^a-z0-9_]", "_", index_name.lower())
    if len(name) > _NAME_MAX:
        name = f"{name[: _NAME_MAX - 11]}_{hashlib.sha256(index_name.encode()).hexdigest()[:10]}"
    return PREFIX + name


def _message(error: Exception) -> str:
    """psycopg's message as one line: libpq's hint lines joined to the first."""
    return "; ".join(line.strip() for line in str(error).splitlines() if line.strip())


class PostgresStore(ChunkStore):
    """Table `table` in the database `url` names: id (primary key), doc_id (indexed), doc_hash, source, text, hash,
    n_tokens, vector(dim), and its HNSW index built with `m` / `ef_construction`, searched with the first of
    `tunings` until `use_ann_tuning` picks another. Every method is one transaction; a failing server is a
    StoreError."""

    def __init__(
        self, url: str, table: str, *, m: int = M, ef_construction: int = EF_CONSTRUCTION,
        tunings: Sequence[Mapping[str, int]] = TUNINGS,
    ):
        self.url = url
        self.location = public_location(url)
        self.table = table
        self.m = m
        self.ef_construction = ef_construction
        self.tunings = [{**TUNINGS[0], **t} for t in tunings]
        self._tuning = self.tunings[0]
        self._conn: Any = None
        # one connection: arms searching from their threads take turns; reentrant, so a caller of vector_batches
        # may use the store between batches
        self._lock = threading.RLock()

    def _connect(self) -> Any:
        """The connection, opened (and pgvector enabled in the database) on first use or after it broke."""
        if self._conn is not None and not self._conn.closed:
            return self._conn
        import psycopg
        from pgvector.psycopg import register_vector

        options = psycopg.conninfo.conninfo_to_dict(self.url)
        options.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
        options.setdefault("application_name", "tunewise")
        conn = psycopg.connect(**options, autocommit=True)
        try:
            if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is None:
                if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone() is None:
                    raise StoreError(f"knowledge store {self.location}: the server has no pgvector extension "
                                     "(https://github.com/pgvector/pgvector)")
                try:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                except psycopg.errors.InsufficientPrivilege:
                    raise StoreError(f"knowledge store {self.location}: pgvector is not enabled in this database and "
                                     "this user may not enable it; run CREATE EXTENSION vector as its owner") from None
            register_vector(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """The connection inside one transaction; psycopg's errors become a one-line StoreError."""
        import psycopg

        try:
            with self._lock:
                conn = self._connect()
                with conn.transaction():
                    yield conn
        except psycopg.Error as e:
            raise StoreError(f"knowledge store {self.location}: {_message(e)}") from None

    def _ident(self, suffix: str = "") -> Any:
        from psycopg import sql

        return sql.Identifier(self.table + suffix)

    def _exists(self, conn: Any) -> bool:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", [self.table]).fetchone()[0]

    def _dimension(self, conn: Any) -> int:
        """The table's vector dimension (pgvector keeps it as the column's type modifier)."""
        query = "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'vector'"
        return conn.execute(query, [self.table]).fetchone()[0]

    def refresh(self) -> None:
        """Nothing to forget: every call asks the server, so it always sees the latest committed rows."""

    def drop(self) -> None:
        from psycopg import sql

        with self._transaction() as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._ident()))

    def count(self) -> int:
        from psycopg import sql

        with self._transaction() as conn:
            if not self._exists(conn):
                return 0
            return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(self._ident())).fetchone()[0]

    def read(self, columns: Sequence[str]) -> Any:
        """The given columns of every row as a pyarrow Table, the schema LanceDBStore.read gives; streamed from a
        server-side cursor, so only one batch of rows is held as Python objects at a time."""
        import pyarrow as pa

        unknown = [c for c in columns if c not in COLUMNS]
        if unknown:
            raise ValueError(f"unknown column(s) {unknown} (known: {', '.join(COLUMNS)})")
        batches = list(self._stream(columns, _READ_BATCH, ordered=False))
        if batches:
            return pa.Table.from_batches(batches)
        with self._transaction() as conn:
            if not self._exists(conn):
                return pa.table({c: pa.array([], pa.string()) for c in columns})
            return _schema(columns, self._dimension(conn)).empty_table()

    def vector_batches(self, rows: int = VECTOR_BATCH) -> Iterator[tuple[list[str], np.ndarray]]:
        """Every row's id and vector, `rows` at a time in id order, streamed from a server-side cursor."""
        for batch in self._stream(["id", "vector"], rows, ordered=True):
            yield batch.column("id").to_pylist(), vector_matrix(batch.column("vector"))

    def _stream(self, columns: Sequence[str], rows: int, *, ordered: bool) -> Iterator[Any]:
        """The columns as pyarrow record batches of up to `rows` rows, in one transaction (a consistent snapshot);
        none when there is no table."""
        from psycopg import sql
        from psycopg.types.string import ByteaBinaryLoader

        query = sql.SQL("SELECT {} FROM {}{}").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)), self._ident(), sql.SQL(" ORDER BY id" if ordered else "")
        )
        with self._transaction() as conn:
            if not self._exists(conn):
                return
            schema = _schema(columns, self._dimension(conn))
            with conn.cursor(name=f"read_{self.table}", binary=True) as cursor:
                # vectors as their wire bytes, decoded a batch at a time by _record_batch: 3x less CPU than the
                # Vector per row pgvector's loader makes
                cursor.adapters.register_loader(conn.adapters.types["vector"].oid, ByteaBinaryLoader)
                cursor.execute(query)
                while fetched := cursor.fetchmany(rows):
                    yield _record_batch(list(zip(*fetched)), schema)

    def documents(self) -> dict[str, str | None]:
        """doc_id -> content hash of what the store holds; None where rows of one document disagree."""
        from psycopg import sql

        query = sql.SQL(
            "SELECT doc_id, CASE WHEN min(doc_hash) = max(doc_hash) THEN min(doc_hash) END FROM {} GROUP BY doc_id"
        ).format(self._ident())
        with self._transaction() as conn:
            return dict(conn.execute(query).fetchall()) if self._exists(conn) else {}

    def delete_documents(self, doc_ids: Iterable[str]) -> None:
        """Delete every row of these documents: one statement per batch of ids, all in one transaction."""
        from psycopg import sql

        ids = sorted(set(doc_ids))
        if not ids:
            return
        query = sql.SQL("DELETE FROM {} WHERE doc_id = ANY(%s)").format(self._ident())
        with self._transaction() as conn:
            if self._exists(conn):
                for start in range(0, len(ids), _DELETE_BATCH):
                    conn.execute(query, [ids[start : start + _DELETE_BATCH]])

    def add(self, chunks: Sequence[Chunk], doc_hashes: dict[str, str], vectors: np.ndarray) -> None:
        """Append rows with one binary COPY in one transaction (the table is created by the first, under a lock so
        that processes indexing into a new table at once do not collide): all land or none."""
        from psycopg import sql

        if not chunks:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._transaction() as conn:
            if not self._exists(conn):
                # Two first writers would both create the table, and one would fail on the catalog's unique index:
                # the later waits here until the earlier commits, then finds the table made.
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"tunewise:{self.table}"])
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (id text PRIMARY KEY, doc_id text NOT NULL, doc_hash text NOT NULL,"
                    " source text NOT NULL, text text NOT NULL, hash text NOT NULL, n_tokens integer NOT NULL,"
                    " vector vector({}) NOT NULL)"
                ).format(self._ident(), sql.Literal(vectors.shape[1]))
            )
            conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (doc_id)").format(self._ident("_doc_id"), self._ident())
            )
            copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                self._ident(), sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
            )
            with conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
                copy.set_types([*(_TYPES[c] for c in COLUMNS[:-1]), "vector"])
                for chunk, vector in zip(chunks, vectors):
                    copy.write_row(
                        (chunk.id, chunk.doc_id, doc_hashes[chunk.doc_id], chunk.source, chunk.text, chunk.hash,
                         chunk.n_tokens, vector)
                    )

    def has_vector_index(self) -> bool:
        with self._transaction() as conn:
            return conn.execute("SELECT to_regclass(%s) IS NOT NULL", [self.table + "_hnsw"]).fetchone()[0]

    def create_vector_index(self) -> None:
        """(Re)build the HNSW index (cosine, m and ef_construction above) in one transaction: searches keep the old
        index until the new one is committed. The graph is built in memory when maintenance_work_mem allows."""
        from psycopg import sql

        with self._transaction() as conn:
            conn.execute("SELECT set_config('maintenance_work_mem', '1GB', true)")
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(self._ident("_hnsw")))
            conn.execute(
                sql.SQL(
                    "CREATE INDEX {} ON {} USING hnsw (vector vector_cosine_ops) WITH (m = {}, ef_construction = {})"
                )
                .format(self._ident("_hnsw"), self._ident(), sql.Literal(self.m), sql.Literal(self.ef_construction))
            )

    def describe_vector_index(self) -> dict[str, Any]:
        """`type` HNSW, the cosine distance, and the build parameters the index was created with."""
        with self._transaction() as conn:
            options = conn.execute("SELECT reloptions FROM pg_class WHERE oid = to_regclass(%s)",
                                   [self.table + "_hnsw"]).fetchone()
        built = dict(o.split("=", 1) for o in (options[0] or [])) if options else {}
        return {"type": "HNSW", "distance": "cosine", **{k: int(v) for k, v in built.items()}}

    def ann_tunings(self) -> list[dict[str, int]]:
        """`ef_search` (candidates an HNSW scan keeps), cheapest first."""
        return [dict(t) for t in self.tunings]

    def use_ann_tuning(self, tuning: Mapping[str, int]) -> None:
        unknown = set(tuning) - set(TUNINGS[0])
        if unknown:
            raise ValueError(f"unknown pgvector query setting(s) {sorted(unknown)} (known: {', '.join(TUNINGS[0])})")
        self._tuning = {**TUNINGS[0], **tuning}

    def optimize(self) -> None:
        """ANALYZE the table, so the planner knows its size and picks the HNSW index for nearest-neighbour queries
        (HNSW takes new rows as they are written; autovacuum does the rest)."""
        from psycopg import sql

        with self._transaction() as conn:
            if self._exists(conn):
                conn.execute(sql.SQL("ANALYZE {}").format(self._ident()))

    def nearest_query(self, depth: int) -> Any:
        """The SQL of one nearest-neighbour search, the query vector its one parameter: the index's operator in
        ORDER BY and a literal LIMIT, the shape the planner answers from the HNSW index."""
        from psycopg import sql

        return sql.SQL("SELECT id, vector <=> %s AS distance FROM {} ORDER BY distance LIMIT {}").format(
            self._ident(), sql.Literal(depth)
        )

    def ann_search(self, queries: np.ndarray, depth: int) -> list[list[tuple[str, float]]]:
        """Per query, up to `depth` (chunk id, cosine similarity), best first, through the HNSW index with
        `hnsw.ef_search` = max(the tuning's ef_search, depth); all queries go in one pipelined round trip. Deeper than
        pgvector's 1,000 the scan is exact."""
        if depth <= 0 or len(queries) == 0:
            return [[] for _ in range(len(queries))]
        query = self.nearest_query(depth)
        with self._transaction() as conn:
            if not self._exists(conn):
                return [[] for _ in range(len(queries))]
            ef_search = min(max(self._tuning["ef_search"], depth), MAX_EF_SEARCH)
            conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef_search)])
            if depth > MAX_EF_SEARCH:
                conn.execute("SELECT set_config('enable_indexscan', 'off', true)")
            with conn.cursor(binary=True) as cursor:
                cursor.executemany(query, [[q] for q in np.asarray(queries, dtype=np.float32)], returning=True)
                out = []
                while True:
                    hits = [(chunk_id, 1.0 - float(distance)) for chunk_id, distance in cursor.fetchall()]
                    out.append(sorted(hits, key=lambda h: (-h[1], h[0])))
                    if not cursor.nextset():
                        break
        return out


def _schema(columns: Sequence[str], dim: int) -> Any:
    """LanceDBStore's schema: strings, n_tokens int32, vector a fixed-size list of `dim` float32."""
    import pyarrow as pa

    types = {"n_tokens": pa.int32(), "vector": pa.list_(pa.float32(), dim)}
    return pa.schema([pa.field(c, types.get(c, pa.string())) for c in columns])


def _record_batch(values: list[tuple[Any, ...]], schema: Any) -> Any:
    """One fetched batch, a tuple per column, as a pyarrow record batch; vectors from pgvector's binary form (uint16
    dim, uint16 unused, dim big-endian float32) into one float32 buffer, not a list per row."""
    import pyarrow as pa

    arrays = []
    for column, kind in zip(values, schema.types):
        if pa.types.is_fixed_size_list(kind):
            wire = np.frombuffer(b"".join(column), dtype=">f4").reshape(len(column), kind.list_size + 1)
            flat = wire[:, 1:].astype(np.float32).ravel()  # column 0 is the 4-byte header
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), kind.list_size))
        else:
            arrays.append(pa.array(column, kind))
    return pa.record_batch(arrays, schema=schema)
