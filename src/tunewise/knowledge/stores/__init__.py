"""Where chunks and their vectors are kept: LanceDB on local disk (the default), or a database named by URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from tunewise.errors import InputError
from tunewise.knowledge.stores.base import ChunkStore

DEFAULT = "lancedb"
POSTGRES_SCHEMES = ("postgresql", "postgres")
# libpq reads credentials from these query parameters too, not only from user:password@.
_CREDENTIALS = {"user", "password"}


class StoreError(InputError):
    """The knowledge store named cannot be used: unreachable, a refused login, no pgvector, a URL holding a password."""


def public_location(location: str) -> str:
    """`location` without user or password (what may be written to a manifest, a report or a directory key)."""
    parts = urlsplit(location)
    if parts.scheme not in POSTGRES_SCHEMES:
        return location
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(p for p in parts.query.split("&") if p and p.partition("=")[0] not in _CREDENTIALS)
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def open_store(location: str, directory: Path) -> ChunkStore:
    """The store `location` names (`knowledge.store`); an index's local files live under `directory`, and a
    database keeps its chunks in a table named after `directory`."""
    if location == DEFAULT:
        from tunewise.knowledge.stores.lancedb import LanceDBStore

        return LanceDBStore(directory / "lancedb")
    parts = urlsplit(location)
    if parts.scheme in POSTGRES_SCHEMES:
        if parts.password is not None or any(k == "password" for k, _ in parse_qsl(parts.query)):
            raise StoreError("the store URL holds a password: leave it out and set PGPASSWORD (or ~/.pgpass) instead")
        from tunewise.knowledge.stores.postgres import PostgresStore, table_name

        return PostgresStore(location, table_name(directory.name))
    raise StoreError(f"unknown knowledge store '{public_location(location)}' (known: {DEFAULT}, postgresql://...)")
