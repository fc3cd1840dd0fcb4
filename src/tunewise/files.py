"""Writing files so that a crash never leaves half of one; folders checked before anything is written in them."""

from __future__ import annotations

import os
from pathlib import Path

from tunewise.errors import InputError


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` so readers see the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def check_folder(path: Path, role: str = "the runs folder") -> None:
    """`path` must be a folder, or one that can be made: neither it nor a folder above it may be a file (or a
    link to nowhere). InputError naming the file otherwise, before anything is written."""
    for folder in (path, *path.parents):
        if folder.is_dir():
            return
        if folder.exists() or folder.is_symlink():
            inside = "" if folder == path else f", so {role} {path} cannot be made in it"
            raise InputError(f"{role} must be a folder, and this is not one{inside}", file=folder)
