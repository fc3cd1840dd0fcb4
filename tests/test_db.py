"""The database from the event loop and worker threads at once: one connection per thread, so a worker's
transaction never takes in, or rolls back, what the loop wrote meanwhile."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np

from tunewise.calls.cache import ResponseCache
from tunewise.db import connect
from tunewise.knowledge.embedder import Embedder
from tunewise.models.base import ChatRequest, Completion


class CountingEmbedder(Embedder):
    """Deterministic vectors, no model: what is under test is the cache the Embedder base class writes."""

    max_seq_length = 256
    tokenizer_file = None

    def _compute(self, texts: list[str]) -> np.ndarray:
        time.sleep(0.001)  # long enough for the loop's writes to interleave
        return np.array([[len(t), sum(map(ord, t)) % 97, 1.0] for t in texts], dtype=np.float32)


def test_the_cache_written_from_the_loop_while_workers_write_and_roll_back(tmp_path):
    db = connect(tmp_path / "db.sqlite")
    cache = ResponseCache(db)
    embedder = CountingEmbedder(db, "counting")
    request = ChatRequest.from_messages([{"role": "user", "content": "q"}])
    stop = threading.Event()
    rolled_back = []

    def embed_batches(worker: int) -> None:
        for batch in range(30):
            embedder.embed([f"w{worker} b{batch} t{i}" for i in range(20)])

    def doomed_transactions() -> None:
        while not stop.is_set():
            try:
                with db.transaction() as conn:
                    conn.execute("INSERT INTO embeddings VALUES ('doomed', ?, x'00')", (str(time.time_ns()),))
                    time.sleep(0.002)  # open while the loop writes (on a shared connection, its rows would go too)
                    raise RuntimeError("rolled back on purpose")
            except RuntimeError:
                rolled_back.append(1)
            time.sleep(0.002)  # and let the other writers have the lock

    async def main() -> None:
        workers = [asyncio.to_thread(embed_batches, w) for w in range(3)]
        doomed = asyncio.to_thread(doomed_transactions)
        tasks = [asyncio.ensure_future(w) for w in [*workers, doomed]]
        for i in range(600):  # the loop thread writes cache rows meanwhile, as a run does
            cache.put(f"key{i}", 0, "m", request, Completion(f"answer {i}", 3, 2, 1.0))
            await asyncio.sleep(0)
        await asyncio.gather(*tasks[:3])
        stop.set()
        await tasks[3]

    asyncio.run(main())
    rows = dict(db.execute("SELECT key, text FROM responses").fetchall())
    assert rows == {f"key{i}": f"answer {i}" for i in range(600)}
    assert db.execute("SELECT count(*) FROM embeddings WHERE embedder = 'counting'").fetchone()[0] == 3 * 30 * 20
    assert db.execute("SELECT count(*) FROM embeddings WHERE embedder = 'doomed'").fetchone()[0] == 0
    assert rolled_back and embedder.computed == 3 * 30 * 20
    db.close()
