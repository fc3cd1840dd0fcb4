"""The one protocol every model backend implements, and the request/completion types it speaks."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from tunewise.prompt import Message


@dataclass(frozen=True)
class ChatRequest:
    """A chat completion request, independent of backend and of credentials."""

    messages: tuple[tuple[str, str], ...]
    temperature: float = 0.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()

    @classmethod
    def from_messages(cls, messages: list[Message], **params: object) -> ChatRequest:
        return cls(messages=tuple((m["role"], m["content"]) for m in messages), **params)  # type: ignore[arg-type]

    def message_dicts(self) -> list[Message]:
        return [{"role": role, "content": content} for role, content in self.messages]

    @cached_property
    def json(self) -> str:
        """The request as sorted JSON: what the cache stores and hashes."""
        payload = {
            "messages": [list(m) for m in self.messages],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop": list(self.stop),
        }
        return json.dumps(payload, sort_keys=True, ensure_ascii=False)

    def cache_key(self, model_id: str) -> str:
        """sha256 of the model id and the sorted-JSON request; holds no endpoint or key."""
        return hashlib.sha256(f"{model_id}\n{self.json}".encode()).hexdigest()


@dataclass(frozen=True)
class Completion:
    """One sampled answer and what it took to get it."""

    text: str
    tokens_in: int
    tokens_out: int
    latency_ms: float
    finish_reason: str = "stop"


@runtime_checkable
class Model(Protocol):
    """A chat model. `id` names it in cache keys (no URL, no key); `complete` returns n samples.

    The samples are numbers `first` .. `first + n - 1` of the request: a backend that seeds its sampling
    seeds by them, so asking for more samples later (after the first ones were cached) never repeats them.
    """

    id: str

    async def complete(self, request: ChatRequest, n: int = 1, *, first: int = 0) -> list[Completion]: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Piece:
    """A streamed piece of a completion: its text and the tokens it took. The first piece carries the prompt's
    tokens (`tokens_in`, estimated when the server had not said so before the stream was closed)."""

    text: str
    tokens_out: int = 1
    tokens_in: int = 0


@runtime_checkable
class StreamingModel(Model, Protocol):
    """A model that streams one sample. Closing the stream (`aclose()` on the iterator, or leaving an
    `async for` early) stops the generation there: tokens not generated are not produced, and not paid."""

    def stream(self, request: ChatRequest, *, sample: int = 0) -> AsyncIterator[Piece]: ...
