"""A task's `knowledge:` made searchable: load its documents and bring its index up to date.

Indexes live under `<runs_dir>/indexes/<task>-<hash of paths, chunking, embedder and store>`, so runs of a
task share one index and only changed documents are re-chunked and re-embedded. `knowledge.store` says where its
chunks and vectors are kept (tunewise.knowledge.stores).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewise.errors import InputError
from tunewise.knowledge.chunker import PACKAGED_TOKENIZERS, ChunkSettings
from tunewise.knowledge.embedder import Embedder, SentenceTransformerEmbedder
from tunewise.knowledge.index import IndexStats, KnowledgeIndex
from tunewise.knowledge.loaders import LoadResult, load_documents
from tunewise.knowledge.stores import DEFAULT, StoreError, open_store, public_location

if TYPE_CHECKING:
    from tunewise.db import Database
    from tunewise.spec import EmbedderSpec, KnowledgeSpec, Task


@dataclass
class TaskIndex:
    """The index, what was loaded into it (and skipped), what updating it took, and where its chunks are kept (the
    store's location without credentials)."""

    index: KnowledgeIndex
    loaded: LoadResult
    stats: IndexStats
    store: str

    def describe(self) -> dict[str, Any]:
        """For the manifest and the report: counts, settings and every skipped file with its reason."""
        return {
            "index_dir": str(self.index.directory),
            "store": self.store,
            "documents": len(self.loaded.documents),
            "chunks": self.stats.chunks,
            "embedded_now": self.stats.embedded,
            "chunk_settings": self.index.settings.model_dump(),
            "embedder": self.index.embedder.id,
            "fingerprint": self.index.fingerprint(),
            "dense_search": self.index.dense_search().to_json(),
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.loaded.skipped],
        }


def open_embedder(
    spec: EmbedderSpec, db: Database, base_dir: Path, *, loop: asyncio.AbstractEventLoop | None = None
) -> Embedder:
    """The embedder `spec` names; a `st:` or `static:` folder is relative to `base_dir` (the task file's folder). An
    endpoint embedder sends its requests on `loop` (the run's) when given."""
    if spec.scheme == "openai":
        from tunewise.knowledge.openai_embedder import OpenAIEmbedder

        return OpenAIEmbedder(db, spec, loop=loop)
    if spec.scheme == "static":
        from tunewise.knowledge.static_embedder import open_static

        return open_static(db, spec.name, base_dir)
    if spec.name in PACKAGED_TOKENIZERS:  # the packaged model's names
        return SentenceTransformerEmbedder(db)
    folder = (base_dir / spec.name).resolve()
    if not folder.is_dir():
        raise InputError(f"sentence-transformers model folder not found: {spec.name}")
    return SentenceTransformerEmbedder(db, str(folder))


def index_directory(
    runs_dir: Path, name: str, paths: list[Path], settings: ChunkSettings, embedder_id: str, store: str = DEFAULT
) -> Path:
    """`<runs_dir>/indexes/<name>-<hash>`; the hash covers the paths, the settings, the embedder and (when not the
    default) the store without credentials, so the same corpus in two stores makes two indexes."""
    parts: list[Any] = [sorted(str(p) for p in paths), settings.model_dump(), embedder_id]
    if store != DEFAULT:
        parts.append(public_location(store))
    key = json.dumps(parts, sort_keys=True)
    return runs_dir / "indexes" / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def build_index(
    paths: list[Path],
    spec: KnowledgeSpec,
    *,
    name: str,
    db: Database,
    runs_dir: Path,
    skip_bad: bool = False,
    progress: Callable[[int, int], None] | None = None,
    embedder: Embedder | None = None,
    update: bool = True,
) -> TaskIndex:
    """Load the documents under `paths` and make the index hold exactly them; with `update=False`, open it as it
    is and refuse when it holds other documents than those (what a server of a past run needs: that run's index).

    `embedder` defaults to the one `spec` names, a `st:` folder taken relative to the working directory.
    """
    settings = ChunkSettings(size=spec.chunk_size, overlap=spec.chunk_overlap)
    embedder = embedder or open_embedder(spec.embedder, db, Path.cwd())
    loaded = load_documents(paths, skip_bad=skip_bad or spec.skip_bad, max_file_mb=spec.max_file_mb)
    directory = index_directory(runs_dir, name, paths, settings, embedder.id, spec.store)
    index = KnowledgeIndex(directory, db, settings=settings, embedder=embedder, store=open_store(spec.store, directory),
                           min_recall=spec.min_recall)
    if update:
        stats = index.update(loaded.documents, progress=progress)
    else:
        changed = index.differences(loaded.documents)
        if changed:
            raise InputError(f"the documents changed since the index was built ({len(changed)} of them, e.g."
                             f" '{changed[0]}'): what was measured cannot be served; run the task again")
        stats = IndexStats(documents=len(loaded.documents), chunks=index.chunk_count(), embedded=0, added_docs=0,
                           changed_docs=0, removed_docs=0, unchanged_docs=len(loaded.documents))
    return TaskIndex(index=index, loaded=loaded, stats=stats, store=public_location(spec.store))


def build_task_index(
    task: Task,
    db: Database,
    runs_dir: Path,
    *,
    skip_bad: bool = False,
    progress: Callable[[int, int], None] | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    update: bool = True,
) -> TaskIndex:
    """The index of `task.knowledge`; a missing path, a bad embedder, a chunk size it cannot read or a store that
    cannot be used is an error at its line in the task file. An endpoint embedder sends its requests on `loop` (the
    run's) when given."""
    spec = task.knowledge
    if spec is None:
        raise task.error("this task has no `knowledge:` to index")
    paths = []
    for i, p in enumerate(spec.paths):
        resolved = (task.base_dir / p).resolve()
        if not resolved.exists():
            raise task.error(f"knowledge path not found: {p}", "knowledge", "paths", i)
        paths.append(resolved)
    try:
        embedder = open_embedder(spec.embedder, db, task.base_dir, loop=loop)
    except InputError as e:
        raise task.error(e.message, "knowledge", "embedder") from None
    try:
        ChunkSettings(size=spec.chunk_size, overlap=spec.chunk_overlap).check_fits(embedder.max_seq_length)
    except InputError as e:
        raise task.error(e.message, "knowledge", "chunk_size") from None
    try:
        return build_index(
            paths, spec, name=task.name, db=db, runs_dir=runs_dir, skip_bad=skip_bad, progress=progress,
            embedder=embedder, update=update,
        )
    except StoreError as e:
        raise task.error(e.message, "knowledge", "store") from None
