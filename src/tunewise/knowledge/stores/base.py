"""What the knowledge index asks of a chunk store: rows per chunk with its unit-length vector, and an ANN index.

A store is the truth about what is indexed: each row carries its document's content hash, so a crash between
writes is repaired by the next update (a document is written in one `add`). BM25 and the index manifest live
beside it on local disk (`KnowledgeIndex`), whatever the store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tunewise.knowledge.chunker import Chunk

COLUMNS = ("id", "doc_id", "doc_hash", "source", "text", "hash", "n_tokens", "vector")
VECTOR_BATCH = 65_536  # rows per batch of `vector_batches`: ~100 MB of 384-dim vectors


class ChunkStore(ABC):
    """Rows with the columns in `COLUMNS`; `vector` is float32, unit length, searched by cosine similarity."""

    @abstractmethod
    def refresh(self) -> None:
        """Forget what is cached of the table, so the next access sees the latest version (written by anyone)."""

    @abstractmethod
    def drop(self) -> None:
        """Remove every row and the vector index."""

    @abstractmethod
    def count(self) -> int:
        """Rows held."""

    @abstractmethod
    def read(self, columns: Sequence[str]) -> Any:
        """The given columns of every row, as a pyarrow Table (empty when there is no table yet); `vector` as a
        fixed-size list of float32."""

    def vector_batches(self, rows: int = VECTOR_BATCH) -> Iterator[tuple[list[str], np.ndarray]]:
        """Every row's id and vector (float32, (n, dim)), `rows` at a time, in an order a second call repeats while
        nobody writes. This default reads both columns whole; a store that can stream them should."""
        table = self.read(["id", "vector"])
        if not table.num_rows:
            return
        ids = table["id"].to_pylist()
        vectors = vector_matrix(table["vector"])
        for start in range(0, len(ids), rows):
            yield ids[start : start + rows], vectors[start : start + rows]

    def documents(self) -> dict[str, str | None]:
        """doc_id -> content hash of what the store holds; None where rows of one document disagree."""
        rows = self.read(["doc_id", "doc_hash"])
        state: dict[str, str | None] = {}
        for doc_id, doc_hash in zip(rows["doc_id"].to_pylist(), rows["doc_hash"].to_pylist()):
            state[doc_id] = doc_hash if state.get(doc_id, doc_hash) == doc_hash else None
        return state

    @abstractmethod
    def delete_documents(self, doc_ids: Iterable[str]) -> None:
        """Delete every row of these documents."""

    @abstractmethod
    def add(self, chunks: Sequence[Chunk], doc_hashes: dict[str, str], vectors: np.ndarray) -> None:
        """Append rows; all of them land or none."""

    @abstractmethod
    def has_vector_index(self) -> bool:
        """Whether an ANN index over `vector` exists."""

    @abstractmethod
    def create_vector_index(self) -> None:
        """(Re)build the ANN index over `vector`, cosine distance."""

    def describe_vector_index(self) -> dict[str, Any]:
        """The ANN index's type (`type`) and build parameters, for the index manifest and the report."""
        return {"type": f"{type(self).__name__} index"}

    def ann_tunings(self) -> list[dict[str, int]]:
        """Query settings of the ANN index to try when its recall falls short, cheapest first; the first is what
        `ann_search` uses until told otherwise. The default has one: the store's own, nothing to tune."""
        return [{}]

    def use_ann_tuning(self, tuning: Mapping[str, int]) -> None:
        """Make `ann_search` use `tuning`, one of `ann_tunings()` (the choice is recorded in the index manifest and
        set again when the index is opened)."""
        if tuning:
            raise ValueError(f"{type(self).__name__} has no ANN query settings to tune, got {dict(tuning)}")

    @abstractmethod
    def optimize(self) -> None:
        """Housekeeping after writes (compaction, folding new rows into the vector index); may do nothing."""

    @abstractmethod
    def ann_search(self, queries: np.ndarray, depth: int) -> list[list[tuple[str, float]]]:
        """Per query, up to `depth` (chunk id, cosine similarity), best first, through the vector index."""


def vector_matrix(column: Any) -> np.ndarray:
    """A pyarrow fixed-size-list column of float32 as an (n, dim) numpy array, without a copy where arrow allows."""
    import pyarrow as pa

    array = pa.concat_arrays(column.chunks) if isinstance(column, pa.ChunkedArray) else column
    dim = getattr(array.type, "list_size", 0)  # an empty read has no vector type
    if not len(array):
        return np.zeros((0, dim), np.float32)
    values = array.values.slice(array.offset * dim, len(array) * dim)
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)
