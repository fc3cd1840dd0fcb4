"""A knowledge index on disk: chunks with vectors in LanceDB, BM25 beside them, searched three ways.

    index = KnowledgeIndex(Path("runs/.index"), db, settings=ChunkSettings(), embedder=SentenceTransformerEmbedder(db))
    stats = index.update(load_documents([Path("docs")]).documents)
    hits = index.search("who founded Acme?", k=5, retriever="hybrid")

Layout of `directory`:
    index.json   chunk settings and embedder id the table was built with (a change rebuilds it)
    lancedb/     table `chunks`: id, doc_id, doc_hash, source, text, hash, n_tokens, vector (the default store;
                 `store=` puts the table elsewhere, see tunewise.knowledge.stores)
    bm25/        bm25s over exactly the same chunks, with their term counts and a fingerprint of the set

Updates are incremental: an unchanged document (same source and text) is neither re-chunked nor
re-embedded, a changed one has its rows replaced, a removed one is deleted. Chunk texts the Embedder
has seen before come from its SQLite cache, so even a rebuild only embeds new text.

Dense search is exact below `ann_min_rows` rows (the vectors are held in memory: numpy is ~20x faster
than LanceDB's flat scan). From there the store builds its ANN index, and its recall@10 against exact search
is measured on a sample of the table's own vectors after every build (tunewise.knowledge.recall): below
`min_recall` the store's costlier query settings are tried, and if none reaches it while staying faster than
an exact scan, search stays exact. `index.json` records what was measured and chosen (`dense_search`).
Hybrid fuses the dense and BM25 rankings (each `max(k, 50)` deep) by reciprocal rank fusion, k=60.
Nothing here calls an LLM.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import time
import warnings
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from tunewise.knowledge.bm25 import BM25Index, BM25Store
from tunewise.knowledge.chunker import (
    SPECIAL_TOKENS,
    Chunk,
    ChunkSettings,
    TokenCounter,
    chunk_bounds,
    chunks_at,
    load_tokenizer,
    tokenizer_path,
)
from tunewise.knowledge.embedder import Embedder
from tunewise.knowledge.loaders import Document
from tunewise.knowledge.ranking import RRF_K, exact_search, reciprocal_rank_fusion
from tunewise.knowledge.recall import DenseSearch, choose
from tunewise.knowledge.stores import ChunkStore, open_store
from tunewise.knowledge.stores.base import vector_matrix

if TYPE_CHECKING:
    from tunewise.db import Database
    from tokenizers import Tokenizer

Retriever = Literal["dense", "bm25", "hybrid"]
RETRIEVERS: tuple[str, ...] = get_args(Retriever)
FORMAT = 1
ANN_MIN_ROWS = 250_000
MIN_RECALL = 0.95
HYBRID_DEPTH = 50
# Below this many rows an exact scan runs on one BLAS thread: handing a small product to a second thread, on
# two cores shared with torch's threads, cost a p95 of ~8 ms against ~0.4 ms on one (bench/README.md).
ONE_THREAD_ROWS = 20_000
_WRITE_BATCH = 4096  # chunks per LanceDB commit
_CHUNK_BATCH = 2048  # documents whose sentences are counted in one batch
_TEXT_BATCH = 8192  # chunk texts read for BM25 per slice
_EMBED_BATCH = 256  # chunks per progress report


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


_CHUNK_COLUMNS = ("id", "doc_id", "source", "text", "n_tokens", "hash")  # Chunk's fields, in its order


@dataclass
class _Snapshot:
    """Everything a search needs, loaded once per index state. The chunks stay in Arrow columns (a million of them
    as Python objects would take gigabytes); a `Chunk` is made for each hit."""

    columns: dict[str, Any]  # pyarrow arrays of _CHUNK_COLUMNS, in id order
    ids: list[str]  # the id column as Python strings: what the rankings name
    vectors: np.ndarray | None  # all vectors, row i = chunk i; None when the ANN index is used
    bm25: BM25Index
    blas: Any = None  # a threadpoolctl controller when exact scans run on one BLAS thread (small matrices)

    def __len__(self) -> int:
        return len(self.ids)

    def chunk(self, chunk_id: str) -> Chunk:
        row = bisect_left(self.ids, chunk_id)  # ids are sorted: no id -> row dict of a million entries
        if row == len(self.ids) or self.ids[row] != chunk_id:
            raise KeyError(chunk_id)
        return Chunk(*(self.columns[c][row].as_py() for c in _CHUNK_COLUMNS))

    def all_chunks(self) -> list[Chunk]:
        return [Chunk(*values) for values in zip(*(self.columns[c].to_pylist() for c in _CHUNK_COLUMNS))]

    def one_blas_thread(self) -> AbstractContextManager[Any]:
        return self.blas.limit(limits=1, user_api="blas") if self.blas is not None else nullcontext()


def _give_back_freed_memory() -> None:
    """Return the heap a whole-table read freed to the system: glibc keeps freed blocks, so without this a loaded
    index at a million chunks holds twice what it uses (measured in bench/README.md, "A million chunks")."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def document_hash(doc: Document) -> str:
    """Content hash of what the index stores about a document: its source and text."""
    return hashlib.sha256(json.dumps([doc.source, doc.text]).encode()).hexdigest()


class KnowledgeIndex:
    """Chunks, vectors and BM25 for a corpus under `directory`; see the module docstring.

    Searches use what was loaded at the first search after opening or after `update`; changes made
    meanwhile through another KnowledgeIndex (or process) are seen after the next `update` or reopening.
    From `ann_min_rows` rows on, the store's ANN index answers dense queries if its recall@10 reaches
    `min_recall` with a median query under `ann_budget_ms` (default: an exact scan's time); see `dense_search`.
    """

    def __init__(
        self,
        directory: Path,
        db: Database,
        *,
        settings: ChunkSettings,
        embedder: Embedder,
        ann_min_rows: int = ANN_MIN_ROWS,
        min_recall: float = MIN_RECALL,
        ann_budget_ms: float | None = None,
        store: ChunkStore | None = None,
    ):
        settings.check_fits(embedder.max_seq_length)
        self.directory = Path(directory)
        self.db = db
        self.settings = settings
        self.embedder = embedder
        self.ann_min_rows = ann_min_rows
        self.min_recall = min_recall
        self.ann_budget_ms = ann_budget_ms
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
        """Chunk, embed and append `docs`: all chunked first (kept as character bounds, so the total is known while
        little is held), then embedded and written in batches of whole documents, one LanceDB commit each."""
        counter = TokenCounter(self._tokenizer_for_chunks())
        bounds: list[list[tuple[int, int, int]]] = []
        for start in range(0, len(docs), _CHUNK_BATCH):
            bounds.extend(chunk_bounds(docs[start : start + _CHUNK_BATCH], self.settings, counter))
        for doc, doc_bounds in zip(docs, bounds):
            if not doc_bounds:
                warnings.warn(f"document '{doc.id}' has no text to index", stacklevel=3)
        total = sum(map(len, bounds))
        embedder_counts = self._embedder_counts()
        limit = self.embedder.max_seq_length - SPECIAL_TOKENS
        cut: list[tuple[str, int]] = []
        done = 0
        if progress is not None and total:
            progress(0, total)
        batch: list[Chunk] = []
        for i, (doc, doc_bounds) in enumerate(zip(docs, bounds)):
            batch.extend(chunks_at(doc, doc_bounds))
            if len(batch) < _WRITE_BATCH and i < len(docs) - 1:
                continue
            if batch:
                if embedder_counts is not None:
                    cut.extend((c.id, n) for c, n in zip(batch, embedder_counts(batch)) if n > limit)
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
        self._warn_truncated(cut, limit)

    def _embedder_counts(self) -> Callable[[list[Chunk]], list[int]] | None:
        """How many word pieces the embedder reads of each chunk: counted with its own tokenizer.json when that is
        another file than the chunker's; the chunk counts when it is the same file, or the model folder has none.
        None for a remote embedder (no tokenizer file at all), which is not second-guessed: the chunk size already
        fits its window, and a server that refuses a text says so."""
        own = self.embedder.tokenizer_file
        if own is None:
            return None
        if own.is_file() and own.resolve() != tokenizer_path(self.settings.tokenizer).resolve():
            counter = TokenCounter(load_tokenizer(str(own)))
            return lambda chunks: counter.counts([c.text for c in chunks])
        return lambda chunks: [c.n_tokens for c in chunks]

    def _warn_truncated(self, cut: list[tuple[str, int]], limit: int) -> None:
        """Warn that the embedder will cut these chunks (id, word pieces as it counts them) to `limit` word pieces."""
        if cut:
            warnings.warn(
                f"{len(cut)} chunk(s) have more than the {limit} word pieces the embedder reads and will be "
                f"truncated when embedded (e.g. '{cut[0][0]}', {cut[0][1]} word pieces)",
                stacklevel=4,
            )

    def _maintain_vector_index(self, rows: int, manifest: dict[str, Any]) -> None:
        """From `ann_min_rows` rows on, build the store's ANN index (again once the table has doubled since), and
        measure it after each build, or when `min_recall` changed, to choose how dense search answers."""
        if rows < self.ann_min_rows:
            return
        trained = manifest.get("ann_trained_rows")
        measured = manifest.get("dense_search")
        if not (self._table.has_vector_index() and trained and rows <= 2 * trained):
            start = time.perf_counter()
            self._table.create_vector_index()
            manifest.pop("dense_search", None)  # measured on the index just replaced
            manifest.update(ann_trained_rows=rows, ann_build_s=round(time.perf_counter() - start, 3))
            self._write_manifest(manifest)
        elif measured and measured.get("min_recall") == self.min_recall:
            return
        chosen = choose(self._table, min_recall=self.min_recall, budget_ms=self.ann_budget_ms,
                        build_s=manifest.get("ann_build_s"))
        manifest["dense_search"] = chosen.to_json()
        self._write_manifest(manifest)

    def dense_search(self) -> DenseSearch:
        """How dense queries are answered (through the ANN index, with which settings, or exactly) and the recall
        measurement behind it: what the run manifest and the report show."""
        rows = self._table.count()
        measured = (self._read_manifest() or {}).get("dense_search")
        if rows >= self.ann_min_rows and measured and self._table.has_vector_index():
            return DenseSearch.from_json(measured)
        return DenseSearch(path="exact", rows=rows, min_recall=self.min_recall)

    def _sync_bm25(self) -> None:
        """Bring BM25 to the table's chunks; only those it has not tokenised yet have their text read."""
        rows = self._table.read(["id", "hash"])
        ids = rows["id"].to_pylist()

        def texts(positions: list[int]) -> Iterator[str]:
            import pyarrow as pa
            import pyarrow.compute as pc

            if not positions:
                return
            table = self._table.read(["id", "text"])
            rows = pc.index_in(pa.array([ids[p] for p in positions], pa.string()), value_set=table["id"])
            for start in range(0, len(rows), _TEXT_BATCH):  # a slice of texts as Python strings at a time
                yield from table["text"].take(rows[start : start + _TEXT_BATCH]).to_pylist()

        self._bm25.sync(ids, rows["hash"].to_pylist(), texts)

    # ------------------------------------------------------------------------------------- search

    def chunks(self) -> list[Chunk]:
        """Every chunk the index holds, in id order (what fine-tuning on the documents trains on)."""
        return self._load().all_chunks()

    def chunk_count(self) -> int:
        """How many chunks the index holds."""
        return len(self._load())

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
        if not queries or not len(snapshot):
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
            [Hit(snapshot.chunk(i), score, rank) for rank, (i, score) in enumerate(r[:k], start=1)]
            for r in rankings
        ]

    def _dense(self, snapshot: _Snapshot, queries: list[str], depth: int) -> list[list[tuple[str, float]]]:
        vectors = self.embedder.embed(queries)
        if snapshot.vectors is None:
            return self._table.ann_search(vectors, depth)
        with snapshot.one_blas_thread():
            return exact_search(snapshot.vectors, vectors, depth, snapshot.ids)

    def _load(self) -> _Snapshot:
        """Read the chunks (and, for exact search, the vectors) and the BM25 model, once per index state."""
        if self._snapshot is not None:
            return self._snapshot
        self._table.refresh()
        dense = self.dense_search()
        exact = dense.path == "exact"
        if not exact:
            self._table.use_ann_tuning(dense.tuning)
        import pyarrow.compute as pc

        rows = self._table.read([*_CHUNK_COLUMNS] + (["vector"] if exact else []))
        order = pc.sort_indices(rows["id"]).to_numpy()
        in_order = bool(np.all(order[1:] > order[:-1]))  # the store's order is usually id order already
        columns = {c: (rows[c] if in_order else rows[c].take(order)).combine_chunks() for c in _CHUNK_COLUMNS}
        ids = columns["id"].to_pylist()
        vectors = None
        if exact:
            vectors = vector_matrix(rows["vector"])
            vectors = vectors if in_order else vectors[order]
        del rows
        _give_back_freed_memory()
        texts = columns["text"]
        self._bm25.sync(ids, columns["hash"].to_pylist(), lambda at: texts.take(np.asarray(at, np.int64)).to_pylist())
        blas = None
        if vectors is not None and len(vectors) < ONE_THREAD_ROWS:
            from threadpoolctl import ThreadpoolController

            blas = ThreadpoolController()
        self._snapshot = _Snapshot(columns, ids, vectors, self._bm25.load(ids), blas=blas)
        return self._snapshot
