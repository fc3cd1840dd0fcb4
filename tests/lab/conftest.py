"""Shared fixtures: one generated world and one quick lab model per test session, in temporary dirs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tunewise.lab import build_world


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed-0 world, written once."""
    return build_world(0, tmp_path_factory.mktemp("world") / "w0")


@pytest.fixture(scope="session")
def lab_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private TUNEWISE_CACHE_DIR, so tests never touch the user's cache."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNEWISE_CACHE_DIR", str(root))
        yield root
