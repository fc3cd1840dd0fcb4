"""Shared fixtures: a loopback OpenAI-compatible server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from openai_server import OpenAITestServer  # noqa: E402


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer(max_lifetime_s=600) as s:
        yield s
