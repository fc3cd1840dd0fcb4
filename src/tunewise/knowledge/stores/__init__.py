"""Where chunks and their vectors are kept: LanceDB on local disk (the default), or a database named by URL."""

from __future__ import annotations

from pathlib import Path

from tunewise.knowledge.stores.base import ChunkStore

DEFAULT = "lancedb"


def open_store(location: str, directory: Path) -> ChunkStore:
    """The store `location` names (`knowledge.store`); an index's local files live under `directory`."""
    if location == DEFAULT:
        from tunewise.knowledge.stores.lancedb import LanceDBStore

        return LanceDBStore(directory / "lancedb")
    raise ValueError(f"unknown knowledge store '{location}' (known: {DEFAULT})")
