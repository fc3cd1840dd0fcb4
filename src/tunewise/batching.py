"""Gather calls that arrive together and serve them with one batched call in a worker thread.

Used where batching is much cheaper per item than one at a time (generation on a local model,
embedding queries), and so that the event loop never blocks on that work.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
V = TypeVar("V")


class MicroBatcher(Generic[T, R]):
    """`await submit(item)` returns `fn(batch)[i]` for the batch the item joined; one batch at a time."""

    def __init__(self, fn: Callable[[list[T]], Sequence[R]], max_batch: int):
        self.fn = fn
        self.max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._worker: asyncio.Task[None] | None = None
        self._lock = threading.Lock()

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    def exclusive(self, fn: Callable[..., V], *args: Any, **kwargs: Any) -> V:
        """Run `fn` serialised with the batches, so what they share need not be thread-safe."""
        with self._lock:
            return fn(*args, **kwargs)

    async def _drain(self) -> None:
        while self._pending:
            await asyncio.sleep(0)  # let items submitted in the same tick join the batch
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            try:
                results = await asyncio.to_thread(self.exclusive, self.fn, [item for item, _ in batch])
            except Exception as e:  # noqa: BLE001 - handed to every waiting caller
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            for (_, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)

    async def aclose(self) -> None:
        if self._worker is not None:
            await self._worker
