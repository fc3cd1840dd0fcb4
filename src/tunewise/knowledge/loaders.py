"""Documents from files and folders: .txt, .md, .html/.htm, .pdf and .jsonl (one document per line).

    load_documents([Path("docs")]) -> LoadResult(documents=[Document(id="p0012", source="p0012.md", ...)], skipped=[])

Ids come from where a file sits under the folder it was found in (`docs/faq/q1.md` -> `faq/q1`), so they
stay the same wherever the folder is. A bad file raises `InputError` naming it, or with `skip_bad=True`
is listed in `LoadResult.skipped` while the good files still load. Files of an unsupported type found
in a folder are always listed as skipped, never an error.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.errors import InputError
from tunewise.knowledge.readers import BadDocument, Record, Text, read_html, read_jsonl, read_pdf, read_plain

READERS: dict[str, Callable[[bytes], Text]] = {
    ".txt": read_plain,
    ".md": read_plain,
    ".markdown": read_plain,
    ".html": read_html,
    ".htm": read_html,
    ".pdf": read_pdf,
}
SUPPORTED: tuple[str, ...] = (*READERS, ".jsonl")
_MB = 1024 * 1024


@dataclass(frozen=True)
class Document:
    """A document to index: a stable id, the source the prompt shows, its plain text, and extra fields."""

    id: str
    source: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Skipped:
    """A file (or a .jsonl line, `path:line`) that was not loaded, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class LoadResult:
    documents: list[Document]
    skipped: list[Skipped]


def load_documents(paths: Sequence[str | Path], *, skip_bad: bool = False, max_file_mb: float = 20) -> LoadResult:
    """Read every document under `paths` (files, or folders searched recursively in sorted order).

    Hidden files and folders (names starting with '.') are ignored. Links to folders are followed, once: a link
    that leads back into a folder it is in (a symlink loop), or that cannot be followed, is bad like an
    unreadable file. A path that does not exist is always an error; with `skip_bad`, every other problem skips
    the file (or the .jsonl line, or the link) and says why.
    """
    loader = _Loader(skip_bad=skip_bad, max_bytes=max_file_mb * _MB, max_file_mb=max_file_mb)
    for given in paths:
        given = Path(given)
        broken = _unfollowable(given)
        if broken is not None and given.is_symlink():
            loader.bad(given, BadDocument(broken))
        elif given.is_dir():
            for file in _walk(given, loader):
                rel = file.relative_to(given)
                if file.suffix.lower() not in SUPPORTED:
                    loader.skipped.append(Skipped(str(file), f"unsupported type ({file.suffix or 'no extension'})"))
                    continue
                loader.load(file, rel.with_suffix("").as_posix(), rel.as_posix())
        elif given.is_file():
            if given.suffix.lower() not in SUPPORTED:
                expected = ", ".join(SUPPORTED)
                loader.bad(given, BadDocument(f"unsupported type ({given.suffix or 'no extension'}); expected {expected}"))
                continue
            loader.load(given, given.stem, given.name)
        else:
            raise InputError("no such file or folder", file=given)
    return LoadResult(loader.documents, loader.skipped)


def _unfollowable(path: Path) -> str | None:
    """Why a link at `path` cannot be followed (it loops, or leads nowhere); None when it can, or is no link."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symlink loop (following the link never ends)"
        if path.is_symlink():
            return f"broken symlink (it points to {os.readlink(path)}, which does not exist)"
    return None


def _walk(folder: Path, loader: _Loader) -> Iterator[Path]:
    """Files under `folder`, hidden ones and hidden folders left out, in sorted POSIX-path order.

    Links are followed; one that leads into a folder the walk is inside (an ancestor, so it would never end) or
    cannot be followed, and a folder that cannot be listed, are `loader.bad`."""
    found: list[tuple[str, Path]] = []

    def visit(directory: Path, inside: frozenset[Path]) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except OSError as e:
            loader.bad(directory, BadDocument(f"cannot read folder: {e.strerror or e}"))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_symlink():
                broken = _unfollowable(path)
                if broken is not None:
                    loader.bad(path, BadDocument(broken))
                    continue
            if entry.is_dir():
                real = path.resolve()
                if real in inside:
                    loader.bad(path, BadDocument(f"symlink loop (the link leads back to {real}, a folder it is in)"))
                    continue
                visit(path, inside | {real})
            else:
                found.append((path.relative_to(folder).as_posix(), path))

    visit(folder, frozenset({folder.resolve()}))
    return (path for _, path in sorted(found))


class _Loader:
    def __init__(self, *, skip_bad: bool, max_bytes: float, max_file_mb: float):
        self.skip_bad = skip_bad
        self.max_bytes = max_bytes
        self.max_file_mb = max_file_mb
        self.documents: list[Document] = []
        self.skipped: list[Skipped] = []
        self.owner: dict[str, str] = {}  # document id -> the file that gave it
        self.seen: set[Path] = set()

    def bad(self, file: Path, error: BadDocument) -> None:
        if not self.skip_bad:
            raise InputError(error.reason, file=file, line=error.line)
        where = f"{file}:{error.line}" if error.line is not None else str(file)
        self.skipped.append(Skipped(where, error.reason))

    def load(self, file: Path, base_id: str, source: str) -> None:
        real = file.resolve()
        if real in self.seen:  # the same file named twice (a folder and a file inside it)
            return
        self.seen.add(real)
        try:
            size = file.stat().st_size
            if size > self.max_bytes:
                raise BadDocument(f"file is {size / _MB:.1f} MB, over the {self.max_file_mb:g} MB limit")
            data = file.read_bytes()
            suffix = file.suffix.lower()
            if suffix == ".jsonl":
                self._load_jsonl(file, data, base_id, source)
                return
            text = READERS[suffix](data)
        except BadDocument as e:
            self.bad(file, e)
            return
        except OSError as e:
            self.bad(file, BadDocument(f"cannot read: {e.strerror or e}"))
            return
        self._add(file, Document(base_id, source, text.text, {"format": suffix[1:], **text.meta}), line=None)

    def _load_jsonl(self, file: Path, data: bytes, base_id: str, source: str) -> None:
        for item in read_jsonl(data):
            if isinstance(item, BadDocument):
                self.bad(file, item)
                continue
            record: Record = item
            doc = Document(f"{base_id}#{record.id}", f"{source}#{record.id}", record.text, record.meta)
            self._add(file, doc, line=record.line)

    def _add(self, file: Path, doc: Document, *, line: int | None) -> None:
        where = f"{file}:{line}" if line is not None else str(file)
        if doc.id in self.owner:
            self.bad(file, BadDocument(f"document id '{doc.id}' is already used by {self.owner[doc.id]}", line))
            return
        self.owner[doc.id] = where
        self.documents.append(doc)
