"""A knowledge index on disk: chunks with vectors in LanceDB, BM25 beside them, searched three ways.

    index = KnowledgeIndex(Path("runs/.index"), db, settings=ChunkSettings(), embedder=SentenceTransformerEmbedder(db))
    stats = index.update(load_documents([Path("docs")]).documents)
    hits = index.search("who founded Acme?", k=5, retriever="hybrid")

Layout of `directory`:
    index.json   chunk settings and embedder id the table was built with (a change rebuilds it)
    lancedb/     table `chunks`: id, doc_id, doc_hash, source, text, hash, n_tokens, vector (the default store;
                 `store=` puts the table elsewhere, see tunewise.knowledge.stores)
    bm25/        bm25s over exactly the same chunks, with their ids and a fingerprint of the set

Updates are incremental: an unchanged document (same source and text) is neither re-chunked nor
re-embedded, a changed one has its rows replaced, a removed one is deleted. Chunk texts the Embedder
has seen before come from its SQLite cache, so even a rebuild only embeds new text.

Dense search is exact below `ann_min_rows` rows (the vectors are held in memory: numpy is ~20x faster
than LanceDB's flat scan), and goes through an IVF_PQ index queried with nprobes 20 / refine 10 above.
The default threshold is high on purpose: at 100k rows exact search answers in ~32 ms with recall 1.0,
while IVF_PQ measured 0.65-0.71 recall@10 on clustered data (bench/knowledge.py); exactness wins until
the corpus is large enough for speed to matter.
Hybrid fuses the dense and BM25 rankings (each `max(k, 50)` deep) by reciprocal rank fusion, k=60.
Nothing here calls an LLM.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from tunewise.knowledge.bm25 import BM25Index, BM25Store, fingerprint
from tunewise.knowledge.chunker import (
    SPECIAL_TOKENS,
    Chunk,
    ChunkSettings,
    chunk_document,
    load_tokenizer,
    tokenizer_path,
)
from tunewise.knowledge.embedder import Embedder
from tunewise.knowledge.loaders import Document
from tunewise.knowledge.ranking import RRF_K, reciprocal_rank_fusion, top_k
from tunewise.knowledge.stores import ChunkStore, open_store

if TYPE_CHECKING:
    from tunewise.db import Database
    from tokenizers import Tokenizer

Retriever = Literal["dense", "bm25", "hybrid"]
RETRIEVERS: tuple[str, ...] = get_args(Retriever)
FORMAT = 1
ANN_MIN_ROWS = 250_000
HYBRID_DEPTH = 50
_WRITE_BATCH = 4096  # chunks per LanceDB commit
_EMBED_BATCH = 256  # chunks per progress report
_QUERY_BATCH = 256  # queries per matrix product in exact search


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk, its rank (from 1) and score: cosine similarity (dense), BM25 score (bm25) or
    reciprocal-rank-fusion score (hybrid)."""

    chunk: Chunk
    score: float
    rank: int


@dataclass(frozen=True)
class IndexStats:
    """What an update did. `embedded` counts embeddings computed now (not found in the cache)."""

    documents: int
    chunks: int
    embedded: int
    added_docs: int
    changed_docs: int
    removed_docs: int
    unchanged_docs: int
    rebuilt: bool = False


@dataclass
class _Snapshot:
    """Everything a search needs, loaded once per index state."""

    chunks: list[Chunk]
    position: dict[str, int]
    vectors: np.ndarray | None  # all vectors, row i = chunks[i]; None when the ANN index is used
    bm25: BM25Index
    ids: list[str] = field(default_factory=list)  # chunks[i].id, kept so a query does not rebuild it

    def __post_init__(self) -> None:
        self.ids = [c.id for c in self.chunks]


def document_hash(doc: Document) -> str:
    """Content hash of what the index stores about a document: its source and text."""
    return hashlib.sha256(json.dumps([doc.source, doc.text]).encode()).hexdigest()


class KnowledgeIndex:
    """Chunks, vectors and BM25 for a corpus under `directory`; see the module docstring.

    Searches use what was loaded at the first search after opening or after `update`; changes made
    meanwhile through another KnowledgeIndex (or process) are seen after the next `update` or reopening.
    """

    def __init__(
        self,
        directory: Path,
        db: Database,
        *,
        settings: ChunkSettings,
        embedder: Embedder,
        ann_min_rows: int = ANN_MIN_ROWS,
        store: ChunkStore | None = None,
    ):
        settings.check_fits(embedder.max_seq_length)
        self.directory = Path(directory)
        self.db = db
        self.settings = settings
        self.embedder = embedder
        self.ann_min_rows = ann_min_rows
        self._table = store if store is not None else open_store("lancedb", self.directory)
        self._bm25 = BM25Store(self.directory / "bm25")
        self._manifest_path = self.directory / "index.json"
        self._tokenizer: Tokenizer | None = None
        self._snapshot: _Snapshot | None = None

    # ------------------------------------------------------------------------------------- update

    def update(self, documents: Sequence[Document], progress: Callable[[int, int], None] | None = None) -> IndexStats:
        """Make the index hold exactly `documents`; `progress(done, total)` follows the chunks to embed."""
        hashes: dict[str, str] = {}
        for doc in documents:
            if doc.id in hashes:
                raise ValueError(f"duplicate document id '{doc.id}'")
            hashes[doc.id] = document_hash(doc)
        self._snapshot = None
        self._table.refresh()
        manifest = self._read_manifest()
        rebuilt = self._rebuild_if_settings_changed(manifest)
        if rebuilt or manifest is None:
            manifest = self._config()
            self._write_manifest(manifest)

        held = self._table.documents()
        todo = [d for d in documents if held.get(d.id, "") != hashes[d.id]]
        changed = sum(1 for d in todo if d.id in held)
        removed = [doc_id for doc_id in held if doc_id not in hashes]
        before = self.embedder.computed
        self._table.delete_documents([*removed, *(d.id for d in todo if d.id in held)])
        self._write(todo, hashes, progress)
        if todo or removed:
            self._table.optimize()
        rows = self._table.count()
        self._maintain_vector_index(rows, manifest)
        self._sync_bm25()
        return IndexStats(
            documents=len(documents),
            chunks=rows,
            embedded=self.embedder.computed - before,
            added_docs=len(todo) - changed,
            changed_docs=changed,
            removed_docs=len(removed),
            unchanged_docs=len(documents) - len(todo),
            rebuilt=rebuilt,
        )

    def fingerprint(self) -> str:
        """What the index holds, as a hash: its settings and embedder, every document id and content hash."""
        state = sorted(self._table.documents().items(), key=lambda kv: kv[0])
        return hashlib.sha256(json.dumps([self._config(), state]).encode()).hexdigest()

    def differences(self, documents: Sequence[Document]) -> list[str]:
        """Ids of the documents the index would change to hold exactly `documents` (new, changed or gone)."""
        held = self._table.documents()
        now = {d.id: document_hash(d) for d in documents}
        return sorted(k for k in held.keys() | now.keys() if held.get(k) != now.get(k))

    def _config(self) -> dict[str, Any]:
        return {"format": FORMAT, "embedder": self.embedder.id, "chunking": self.settings.model_dump()}

    def _read_manifest(self) -> dict[str, Any] | None:
        try:
            return json.loads(self._manifest_path.read_text())
        except (OSError, ValueError):
            return None

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self._manifest_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(tmp, self._manifest_path)

    def _rebuild_if_settings_changed(self, manifest: dict[str, Any] | None) -> bool:
        """Drop table and BM25 when they were built with other settings (or nobody knows with which)."""
        config = self._config()
        if manifest is not None and all(manifest.get(key) == value for key, value in config.items()):
            return False
        if manifest is None and self._table.count() == 0:
            return False  # a new index, not a rebuild
        self._table.drop()
        self._bm25.clear()
        return True

    def _tokenizer_for_chunks(self) -> Tokenizer:
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.settings.tokenizer)
        return self._tokenizer

    def _write(self, docs: list[Document], hashes: dict[str, str], progress: Callable[[int, int], None] | None) -> None:
        """Chunk, embed and append `docs`, whole documents per LanceDB commit."""
        tokenizer = self._tokenizer_for_chunks()
        per_doc: list[list[Chunk]] = []
        for doc in docs:
            chunks = chunk_document(doc, self.settings, tokenizer)
            if not chunks:
                warnings.warn(f"document '{doc.id}' has no text to index", stacklevel=3)
            per_doc.append(chunks)
        total = sum(len(c) for c in per_doc)
        self._warn_truncated([c for chunks in per_doc for c in chunks])
        done = 0
        if progress is not None and total:
            progress(0, total)
        batch: list[Chunk] = []
        for i, chunks in enumerate(per_doc):
            batch.extend(chunks)
            if len(batch) < _WRITE_BATCH and i < len(per_doc) - 1:
                continue
            if batch:
                # embed in order of length, as sentence-transformers does within a call: less padding
                order = sorted(range(len(batch)), key=lambda n: batch[n].n_tokens)
                vectors = np.empty((len(batch), 0), np.float32)
                for start in range(0, len(order), _EMBED_BATCH):
                    part = order[start : start + _EMBED_BATCH]
                    embedded = self.embedder.embed([batch[n].text for n in part])
                    if vectors.shape[1] == 0:
                        vectors = np.empty((len(batch), embedded.shape[1]), np.float32)
                    vectors[part] = embedded
                    done += len(part)
                    if progress is not None:
                        progress(done, total)
                self._table.add(batch, hashes, vectors)
            batch = []

    def _warn_truncated(self, chunks: list[Chunk]) -> None:
        """Warn when the embedder would cut chunks, counting with the embedder's own tokenizer.

        Without a tokenizer.json in the model folder the chunk counts stand in. A remote embedder (no
        tokenizer file at all) is not second-guessed: the chunk size already fits its window, and a
        server that refuses a text says so.
        """
        own = self.embedder.tokenizer_file
        if own is None:
            return
        limit = self.embedder.max_seq_length - SPECIAL_TOKENS
        counts = [c.n_tokens for c in chunks]
        if own.is_file() and own.resolve() != tokenizer_path(self.settings.tokenizer).resolve():
            encodings = load_tokenizer(str(own)).encode_batch([c.text for c in chunks], add_special_tokens=False)
            counts = [len(e.ids) for e in encodings]
        cut = [(c, n) for c, n in zip(chunks, counts) if n > limit]
        if cut:
            warnings.warn(
                f"{len(cut)} chunk(s) have more than the {limit} word pieces the embedder reads and will be "
                f"truncated when embedded (e.g. '{cut[0][0].id}', {cut[0][1]} word pieces)",
                stacklevel=4,
            )

    def _maintain_vector_index(self, rows: int, manifest: dict[str, Any]) -> None:
        """Train IVF_PQ once the table is big enough; retrain when it has doubled since training."""
        if rows < self.ann_min_rows:
            return
        trained = manifest.get("ann_trained_rows")
        if self._table.has_vector_index() and trained and rows <= 2 * trained:
            return
        self._table.create_vector_index()
        manifest["ann_trained_rows"] = rows
        self._write_manifest(manifest)

    def _sync_bm25(self) -> None:
        """Rebuild BM25 when the chunk set differs from the one it was built on."""
        rows = self._table.read(["id", "hash"])
        current = fingerprint(rows["id"].to_pylist(), rows["hash"].to_pylist())
        if self._bm25.fingerprint() != current:
            rows = self._table.read(["id", "text"])
            self._bm25.build(rows["id"].to_pylist(), rows["text"].to_pylist(), current)

    # ------------------------------------------------------------------------------------- search

    def chunks(self) -> list[Chunk]:
        """Every chunk the index holds, in id order (what fine-tuning on the documents trains on)."""
        return list(self._load().chunks)

    def search(self, query: str, k: int, retriever: Retriever = "hybrid") -> list[Hit]:
        """The k best chunks for `query`, best first."""
        return self.search_many([query], k, retriever)[0]

    def search_many(self, queries: Sequence[str], k: int, retriever: Retriever = "hybrid") -> list[list[Hit]]:
        """`search` for many queries; their embeddings are computed in one batch."""
        if retriever not in RETRIEVERS:
            raise ValueError(f"unknown retriever '{retriever}' (known: {', '.join(RETRIEVERS)})")
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        queries = list(queries)
        snapshot = self._load()
        if not queries or not snapshot.chunks:
            return [[] for _ in queries]
        if retriever == "bm25":
            rankings = [snapshot.bm25.search(q, k) for q in queries]
        elif retriever == "dense":
            rankings = self._dense(snapshot, queries, k)
        else:
            depth = max(k, HYBRID_DEPTH)
            dense = self._dense(snapshot, queries, depth)
            sparse = [snapshot.bm25.search(q, depth) for q in queries]
            rankings = [
                reciprocal_rank_fusion([[i for i, _ in d], [i for i, _ in s]], RRF_K)[:k] for d, s in zip(dense, sparse)
            ]
        return [
            [Hit(snapshot.chunks[snapshot.position[i]], score, rank) for rank, (i, score) in enumerate(r[:k], start=1)]
            for r in rankings
        ]

    def _dense(self, snapshot: _Snapshot, queries: list[str], depth: int) -> list[list[tuple[str, float]]]:
        vectors = self.embedder.embed(queries)
        if snapshot.vectors is None:
            return self._table.ann_search(vectors, depth)
        out: list[list[tuple[str, float]]] = []
        for start in range(0, len(vectors), _QUERY_BATCH):
            scores = vectors[start : start + _QUERY_BATCH] @ snapshot.vectors.T
            out.extend(top_k(row, depth, snapshot.ids) for row in scores)
        return out

    def _load(self) -> _Snapshot:
        """Read the chunks (and, for exact search, the vectors) and the BM25 model, once per index state."""
        if self._snapshot is not None:
            return self._snapshot
        self._table.refresh()
        exact = self._table.count() < self.ann_min_rows or not self._table.has_vector_index()
        columns = ["id", "doc_id", "source", "text", "hash", "n_tokens"] + (["vector"] if exact else [])
        rows = self._table.read(columns)
        if rows.num_rows:
            rows = rows.sort_by("id")
        chunks = [
            Chunk(*values)
            for values in zip(*(rows[c].to_pylist() for c in ("id", "doc_id", "source", "text", "n_tokens", "hash")))
        ]
        vectors = None
        if exact:
            vectors = _matrix(rows["vector"]) if chunks else np.zeros((0, 0), np.float32)
        current = fingerprint([c.id for c in chunks], [c.hash for c in chunks])
        if self._bm25.fingerprint() != current:
            self._bm25.build([c.id for c in chunks], [c.text for c in chunks], current)
        self._snapshot = _Snapshot(chunks, {c.id: n for n, c in enumerate(chunks)}, vectors, self._bm25.load())
        return self._snapshot


def _matrix(column: Any) -> np.ndarray:
    """A pyarrow fixed-size-list column of float32 as an (n, dim) numpy array."""
    import pyarrow as pa

    array = pa.concat_arrays(column.chunks) if isinstance(column, pa.ChunkedArray) else column
    dim = array.type.list_size
    return np.asarray(array.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)
