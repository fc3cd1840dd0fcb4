"""The default chunk store: a LanceDB table on disk, rows per chunk with its unit-length vector, and the vector index.

lancedb is imported on first use (it costs seconds).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunewise.knowledge.chunker import Chunk
from tunewise.knowledge.stores.base import ChunkStore

TABLE = "chunks"
# IVF_PQ with these query settings kept recall@10 at 1.00 against exact search (ENVIRONMENT.md, 100k x 384).
NPROBES = 20
REFINE_FACTOR = 10
_DELETE_BATCH = 500


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class LanceDBStore(ChunkStore):
    """The `chunks` table under `directory`: id, doc_id, doc_hash, source, text, hash, n_tokens, vector."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._db: Any = None
        self._table: Any = None

    def _connect(self) -> Any:
        if self._db is None:
            import lancedb

            self.directory.mkdir(parents=True, exist_ok=True)
            self._db = lancedb.connect(str(self.directory))
        return self._db

    def _open(self) -> Any:
        if self._table is None and TABLE in self._connect().list_tables().tables:
            self._table = self._db.open_table(TABLE)
        return self._table

    def refresh(self) -> None:
        """Forget the open table, so the next access sees the latest version (written by anyone)."""
        self._table = None

    def drop(self) -> None:
        if self._open() is not None:
            self._db.drop_table(TABLE)
        self._table = None

    def count(self) -> int:
        table = self._open()
        return 0 if table is None else table.count_rows()

    def read(self, columns: Sequence[str]) -> Any:
        """The given columns of every row, as a pyarrow Table (empty when there is no table yet)."""
        import pyarrow as pa

        table = self._open()
        if table is None:
            return pa.table({c: pa.array([], pa.string()) for c in columns})
        return table.search().select(list(columns)).limit(None).to_arrow()

    def delete_documents(self, doc_ids: Iterable[str]) -> None:
        table = self._open()
        ids = sorted(set(doc_ids))
        if table is None or not ids:
            return
        for start in range(0, len(ids), _DELETE_BATCH):
            batch = ids[start : start + _DELETE_BATCH]
            table.delete(f"doc_id IN ({', '.join(_quote(i) for i in batch)})")

    def add(self, chunks: Sequence[Chunk], doc_hashes: dict[str, str], vectors: np.ndarray) -> None:
        """Append rows; all of them land or none (one LanceDB commit)."""
        import pyarrow as pa

        if not chunks:
            return
        dim = vectors.shape[1]
        schema = pa.schema(
            [
                pa.field("id", pa.string()),
                pa.field("doc_id", pa.string()),
                pa.field("doc_hash", pa.string()),
                pa.field("source", pa.string()),
                pa.field("text", pa.string()),
                pa.field("hash", pa.string()),
                pa.field("n_tokens", pa.int32()),
                pa.field("vector", pa.list_(pa.float32(), dim)),
            ]
        )
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel(), pa.float32())
        rows = pa.table(
            [
                pa.array([c.id for c in chunks], pa.string()),
                pa.array([c.doc_id for c in chunks], pa.string()),
                pa.array([doc_hashes[c.doc_id] for c in chunks], pa.string()),
                pa.array([c.source for c in chunks], pa.string()),
                pa.array([c.text for c in chunks], pa.string()),
                pa.array([c.hash for c in chunks], pa.string()),
                pa.array([c.n_tokens for c in chunks], pa.int32()),
                pa.FixedSizeListArray.from_arrays(flat, dim),
            ],
            schema=schema,
        )
        table = self._open()
        if table is None:
            self._table = self._connect().create_table(TABLE, data=rows)
        else:
            table.add(rows)

    def has_vector_index(self) -> bool:
        table = self._open()
        return table is not None and any(list(i.columns) == ["vector"] for i in table.list_indices())

    def create_vector_index(self) -> None:
        """(Re)train an IVF_PQ index with cosine distance on the unit vectors."""
        from lancedb.index import IvfPq

        self._open().create_index("vector", config=IvfPq(distance_type="cosine"), replace=True)

    def optimize(self) -> None:
        """Compact small files, fold new rows into the vector index, drop versions older than a week."""
        table = self._open()
        if table is not None:
            table.optimize()

    def ann_search(self, queries: np.ndarray, depth: int) -> list[list[tuple[str, float]]]:
        """Per query, up to `depth` (chunk id, cosine similarity), best first, through the vector index."""
        table = self._open()
        if table is None or depth <= 0 or len(queries) == 0:
            return [[] for _ in range(len(queries))]
        query = table.search(queries if len(queries) > 1 else queries[0], vector_column_name="vector")
        result = (
            query.distance_type("cosine")
            .nprobes(NPROBES)
            .refine_factor(REFINE_FACTOR)
            .limit(depth)
            .select(["id", "_distance"])
            .to_arrow()
        )
        out: list[list[tuple[str, float]]] = [[] for _ in range(len(queries))]
        which = result["query_index"].to_pylist() if "query_index" in result.column_names else [0] * result.num_rows
        for q, chunk_id, distance in zip(which, result["id"].to_pylist(), result["_distance"].to_pylist()):
            out[q].append((chunk_id, 1.0 - float(distance)))
        for hits in out:
            hits.sort(key=lambda h: (-h[1], h[0]))
        return out
