"""`openai:<model>` embeddings from any OpenAI-compatible `/v1/embeddings` endpoint.

Texts the cache lacks go out `batch_size` per request, up to `max_concurrency` requests at once, each
retried by `OpenAIEndpoint` exactly as chat calls are. The index is synchronous and runs in worker threads,
while the SDK client is async: an embedder bound to the run's event loop (`loop=`) sends its requests on that
loop (the worker waits for them), so one client and its connections serve the whole run; an unbound one (a
script, `tunewise index`) runs each batch in an event loop of its own, with a client of its own.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tunewise.errors import ModelCallError
from tunewise.knowledge.embedder import Embedder
from tunewise.models.openai_client import OpenAIEndpoint

if TYPE_CHECKING:
    from tunewise.db import Database
    from tunewise.spec import EmbedderSpec



class OpenAIEmbedder(Embedder):
    """Embeddings from an OpenAI-compatible server, normalised to unit length.

    The id names the model and the dimensions asked for, not the server or the key: the same model
    behind another URL shares the cache.
    """

    def __init__(self, db: Database, spec: EmbedderSpec, *, loop: asyncio.AbstractEventLoop | None = None):
        super().__init__(db, spec.uri if spec.dimensions is None else f"{spec.uri} ({spec.dimensions} dimensions)")
        self.spec = spec
        self.name = spec.name
        self.dimensions = spec.dimensions
        self.batch_size = spec.batch_size
        self.loop = loop
        self.retries = 0  # requests sent again after a retryable failure
        self.endpoint = OpenAIEndpoint(spec)  # checks the API key now, so a missing one is an error at its line
        self._max_seq_length = spec.max_input_tokens
        self._server = spec.base_url or "the OpenAI API"

    @property
    def max_seq_length(self) -> int:
        return self._max_seq_length

    @property
    def tokenizer_file(self) -> Path | None:
        """None: the server's tokenizer is not here, so the index cannot count what it would cut."""
        return None

    def _compute(self, texts: list[str]) -> np.ndarray:
        try:
            return self._run(texts)
        except ModelCallError as e:
            raise ModelCallError(
                f"embedding with {self.id} at {self._server} failed: {e}",
                status=e.status,
                request_id=e.request_id,
                retryable=e.retryable,
                stops_run=e.stops_run,
            ) from e

    def _run(self, texts: list[str]) -> np.ndarray:
        """The vectors of `texts`, from a worker thread on the run's loop, or on a loop made for this call."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("OpenAIEmbedder.embed blocks until the server answers: call it from a worker thread")
        if self.loop is not None:
            return asyncio.run_coroutine_threadsafe(self._embed_all(texts, self.endpoint), self.loop).result()
        return asyncio.run(self._embed_alone(texts))

    async def _embed_alone(self, texts: list[str]) -> np.ndarray:
        endpoint = OpenAIEndpoint(self.spec)
        try:
            return await self._embed_all(texts, endpoint)
        finally:
            await endpoint.aclose()

    async def _embed_all(self, texts: list[str], endpoint: OpenAIEndpoint) -> np.ndarray:
        batches = [texts[start : start + self.batch_size] for start in range(0, len(texts), self.batch_size)]
        before = endpoint.retries
        try:
            vectors = np.concatenate(await asyncio.gather(*(self._request(batch, endpoint) for batch in batches)))
        finally:
            self.retries += endpoint.retries - before
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1)

    async def _request(self, batch: list[str], endpoint: OpenAIEndpoint) -> np.ndarray:
        kwargs: dict[str, Any] = {"model": self.name, "input": batch}
        if self.dimensions is not None:
            kwargs["dimensions"] = self.dimensions
        response = await endpoint.call(lambda client: client.embeddings.create(**kwargs))
        rows = sorted(response.data, key=lambda row: row.index)
        if len(rows) != len(batch):
            raise ModelCallError(f"the server returned {len(rows)} embeddings for {len(batch)} texts")
        vectors = np.array([row.embedding for row in rows], dtype=np.float32)
        if self.dimensions is not None and vectors.shape[1] != self.dimensions:
            raise ModelCallError(f"asked for {self.dimensions} dimensions, the server returned {vectors.shape[1]}")
        return vectors

    async def aclose(self) -> None:
        """Close the run's client (bound embedders; an unbound one closes each of its own as it goes)."""
        await self.endpoint.aclose()
