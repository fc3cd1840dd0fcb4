"""Where the lab keeps built models and the default world: the user cache dir, or $TUNEWISE_CACHE_DIR."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """tunewise's cache root; the TUNEWISE_CACHE_DIR environment variable overrides the platform default."""
    override = os.environ.get("TUNEWISE_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir("tunewise"))


def lab_dir() -> Path:
    """The lab's part of the cache."""
    return cache_root() / "lab"
