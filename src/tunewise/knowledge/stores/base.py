"""What the knowledge index asks of a chunk store: rows per chunk with its unit-length vector, and an ANN index.

A store is the truth about what is indexed: each row carries its document's content hash, so a crash between
writes is repaired by the next update (a document is written in one `add`). BM25 and the index manifest live
beside it on local disk (`KnowledgeIndex`), whatever the store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from tunewise.knowledge.chunker import Chunk

COLUMNS = ("id", "doc_id", "doc_hash", "source", "text", "hash", "n_tokens", "vector")


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

    @abstractmethod
    def optimize(self) -> None:
        """Housekeeping after writes (compaction, folding new rows into the vector index); may do nothing."""

    @abstractmethod
    def ann_search(self, queries: np.ndarray, depth: int) -> list[list[tuple[str, float]]]:
        """Per query, up to `depth` (chunk id, cosine similarity), best first, through the vector index."""
