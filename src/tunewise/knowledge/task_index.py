"""A task's `knowledge:` made searchable: load its documents and bring its index up to date.

Indexes live under `<runs_dir>/indexes/<task>-<hash of paths, chunking and embedder>`, so runs of a
task share one index and only changed documents are re-chunked and re-embedded.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewise.errors import InputError
from tunewise.knowledge.chunker import ChunkSettings
from tunewise.knowledge.embedder import Embedder, open_embedder
from tunewise.knowledge.index import IndexStats, KnowledgeIndex
from tunewise.knowledge.loaders import LoadResult, load_documents

if TYPE_CHECKING:
    from tunewise.task import KnowledgeSpec, Task


@dataclass
class TaskIndex:
    """The index, what was loaded into it (and skipped), and what updating it took."""

    index: KnowledgeIndex
    loaded: LoadResult
    stats: IndexStats

    def describe(self) -> dict[str, Any]:
        """For the manifest and the report: counts, settings and every skipped file with its reason."""
        return {
            "index_dir": str(self.index.directory),
            "documents": len(self.loaded.documents),
            "chunks": self.stats.chunks,
            "embedded_now": self.stats.embedded,
            "chunk_settings": self.index.settings.model_dump(),
            "embedder": self.index.embedder.id,
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.loaded.skipped],
        }


def index_directory(runs_dir: Path, name: str, paths: list[Path], settings: ChunkSettings, embedder_id: str) -> Path:
    key = json.dumps([sorted(str(p) for p in paths), settings.model_dump(), embedder_id], sort_keys=True)
    return runs_dir / "indexes" / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def build_index(
    paths: list[Path],
    spec: KnowledgeSpec,
    *,
    name: str,
    db: sqlite3.Connection,
    runs_dir: Path,
    skip_bad: bool = False,
    progress: Callable[[int, int], None] | None = None,
    embedder: Embedder | None = None,
) -> TaskIndex:
    """Load the documents under `paths` and make the index hold exactly them.

    `embedder` defaults to the one `spec` names, a `st:` folder taken relative to the working directory.
    """
    settings = ChunkSettings(size=spec.chunk_size, overlap=spec.chunk_overlap)
    embedder = embedder or open_embedder(spec.embedder, db, Path.cwd())
    loaded = load_documents(paths, skip_bad=skip_bad or spec.skip_bad, max_file_mb=spec.max_file_mb)
    directory = index_directory(runs_dir, name, paths, settings, embedder.id)
    index = KnowledgeIndex(directory, db, settings=settings, embedder=embedder)
    stats = index.update(loaded.documents, progress=progress)
    return TaskIndex(index=index, loaded=loaded, stats=stats)


def build_task_index(
    task: Task,
    db: sqlite3.Connection,
    runs_dir: Path,
    *,
    skip_bad: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> TaskIndex:
    """The index of `task.knowledge`; a missing path, a bad embedder or a chunk size it cannot read is an
    error at its line in the task file."""
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
        embedder = open_embedder(spec.embedder, db, task.base_dir)
    except InputError as e:
        raise task.error(e.message, "knowledge", "embedder") from None
    try:
        ChunkSettings(size=spec.chunk_size, overlap=spec.chunk_overlap).check_fits(embedder.max_seq_length)
    except InputError as e:
        raise task.error(e.message, "knowledge", "chunk_size") from None
    return build_index(
        paths, spec, name=task.name, db=db, runs_dir=runs_dir, skip_bad=skip_bad, progress=progress, embedder=embedder
    )
