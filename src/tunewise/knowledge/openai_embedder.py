"""`openai:<model>` embeddings from any OpenAI-compatible `/v1/embeddings` endpoint.

Texts the cache lacks go out `batch_size` per request, up to `max_concurrency` requests at once, each
retried by `OpenAIEndpoint` exactly as chat calls are. The index is synchronous while the SDK client
is async, so the requests run on the embedder's own event loop in a background thread: `embed` works
the same from plain code, from a worker thread and from inside a running event loop, and the client
keeps its connections open from one call to the next.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import weakref
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from tunewise.errors import ModelCallError
from tunewise.knowledge.embedder import Embedder
from tunewise.models.openai_client import OpenAIEndpoint

if TYPE_CHECKING:
    from tunewise.task import EmbedderSpec

T = TypeVar("T")


class OpenAIEmbedder(Embedder):
    """Embeddings from an OpenAI-compatible server, normalised to unit length.

    The id names the model and the dimensions asked for, not the server or the key: the same model
    behind another URL shares the cache.
    """

    def __init__(self, db: sqlite3.Connection, spec: EmbedderSpec):
        super().__init__(db, spec.uri if spec.dimensions is None else f"{spec.uri} ({spec.dimensions} dimensions)")
        self.name = spec.name
        self.dimensions = spec.dimensions
        self.batch_size = spec.batch_size
        self.endpoint = OpenAIEndpoint(spec)
        self._max_seq_length = spec.max_input_tokens
        self._server = spec.base_url or "the OpenAI API"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()

    @property
    def max_seq_length(self) -> int:
        return self._max_seq_length

    @property
    def tokenizer_file(self) -> Path | None:
        """None: the server's tokenizer is not here, so the index cannot count what it would cut."""
        return None

    def _compute(self, texts: list[str]) -> np.ndarray:
        try:
            return self._run(self._embed_all(texts))
        except ModelCallError as e:
            raise ModelCallError(
                f"embedding with {self.id} at {self._server} failed: {e}",
                status=e.status,
                request_id=e.request_id,
                retryable=e.retryable,
            ) from e

    async def _embed_all(self, texts: list[str]) -> np.ndarray:
        batches = [texts[start : start + self.batch_size] for start in range(0, len(texts), self.batch_size)]
        vectors = np.concatenate(await asyncio.gather(*(self._request(batch) for batch in batches)))
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1)

    async def _request(self, batch: list[str]) -> np.ndarray:
        kwargs: dict[str, Any] = {"model": self.name, "input": batch}
        if self.dimensions is not None:
            kwargs["dimensions"] = self.dimensions
        response = await self.endpoint.call(lambda client: client.embeddings.create(**kwargs))
        rows = sorted(response.data, key=lambda row: row.index)
        if len(rows) != len(batch):
            raise ModelCallError(f"the server returned {len(rows)} embeddings for {len(batch)} texts")
        vectors = np.array([row.embedding for row in rows], dtype=np.float32)
        if self.dimensions is not None and vectors.shape[1] != self.dimensions:
            raise ModelCallError(f"asked for {self.dimensions} dimensions, the server returned {vectors.shape[1]}")
        return vectors

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on this embedder's event loop: started on first use, stopped when the embedder goes."""
        with self._loop_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=_serve, args=(loop, self.endpoint), name="embedder", daemon=True).start()
                weakref.finalize(self, loop.call_soon_threadsafe, loop.stop)
                self._loop = loop
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()


def _serve(loop: asyncio.AbstractEventLoop, endpoint: OpenAIEndpoint) -> None:
    """The background thread: run `loop` until stopped, then close the client and the loop."""
    asyncio.set_event_loop(loop)
    loop.run_forever()
    loop.run_until_complete(endpoint.aclose())
    loop.close()
