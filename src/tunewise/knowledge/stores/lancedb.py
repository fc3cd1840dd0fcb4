"""The default chunk store: a LanceDB table on disk, rows per chunk with its unit-length vector, and the vector index.

lancedb is imported on first use (it costs seconds).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunewise.knowledge.chunker import Chunk
from tunewise.knowledge.stores.base import VECTOR_BATCH, ChunkStore, vector_matrix

TABLE = "chunks"
# IVF_SQ (8-bit scalar quantisation): at 1M x 384 clustered MiniLM vectors it built in 62 s where IVF_PQ took 725 s,
# and nprobes 20 / refine 10 found 0.987 of the exact top-10 of real queries where IVF_PQ found 0.678 (0.920 with
# refine 50). bench/README.md, "A million chunks".
INDEX_TYPE = "IVF_SQ"
# Query settings tried in turn while recall@10 on the sampled rows falls short of min_recall (cheapest first).
TUNINGS: list[dict[str, int]] = [
    {"nprobes": 20, "refine_factor": 10},
    {"nprobes": 40, "refine_factor": 10},
    {"nprobes": 80, "refine_factor": 20},
]
_DELETE_BATCH = 500


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class LanceDBStore(ChunkStore):
    """The `chunks` table under `directory`: id, doc_id, doc_hash, source, text, hash, n_tokens, vector; its vector
    index is queried with the first of `tunings` until `use_ann_tuning` picks another."""

    def __init__(self, directory: Path, *, tunings: Sequence[Mapping[str, int]] = TUNINGS):
        self.directory = directory
        self.tunings = [{**TUNINGS[0], **t} for t in tunings]
        self._db: Any = None
        self._table: Any = None
        self._tuning = self.tunings[0]

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

    def vector_batches(self, rows: int = VECTOR_BATCH) -> Iterator[tuple[list[str], np.ndarray]]:
        """Every row's id and vector, `rows` at a time, streamed from the table (one batch in memory at a time)."""
        table = self._open()
        if table is None:
            return
        reader = table.search().select(["id", "vector"]).limit(None).to_batches(rows)
        for batch in reader:
            if batch.num_rows:
                yield batch.column("id").to_pylist(), vector_matrix(batch.column("vector"))

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
        """(Re)train an IVF_SQ index with cosine distance on the unit vectors (LanceDB's default partitions)."""
        from lancedb.index import IvfSq

        self._open().create_index("vector", config=IvfSq(distance_type="cosine"), replace=True)

    def describe_vector_index(self) -> dict[str, Any]:
        """`type`, distance and rows indexed, and the quantisation LanceDB reports for the index."""
        table = self._open()
        index = next(i for i in table.list_indices() if list(i.columns) == ["vector"])
        details = getattr(index, "index_details", None) or {}
        return {"type": INDEX_TYPE, "distance": "cosine", "indexed_rows": index.num_indexed_rows,
                **({"compression": details["compression"]} if "compression" in details else {})}

    def ann_tunings(self) -> list[dict[str, int]]:
        """`nprobes` (IVF partitions searched) and `refine_factor` (candidates re-ranked on the stored vectors, per
        result), cheapest first."""
        return [dict(t) for t in self.tunings]

    def use_ann_tuning(self, tuning: Mapping[str, int]) -> None:
        unknown = set(tuning) - set(TUNINGS[0])
        if unknown:
            raise ValueError(f"unknown LanceDB query setting(s) {sorted(unknown)} (known: {', '.join(TUNINGS[0])})")
        self._tuning = {**TUNINGS[0], **tuning}

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
            .nprobes(self._tuning["nprobes"])
            .refine_factor(self._tuning["refine_factor"])
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
