"""A measured run to serve, and the served arm on a loopback port, for the serve tests."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from test_rag import write_knowledge_task

import tunewise
from tunewise.evaluation.experiment import RunOptions
from tunewise.serve import Keys, Limits, create_app, load_arm

KEY = "sk-tunewise-test-key"
ARMS = ["zero_shot", {"rag": {"k": 2, "retriever": "bm25"}}, {"self_consistency": {"k": 4}}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """The arm of a run served by uvicorn in a thread of its own (its own event loop), on 127.0.0.1."""

    def __init__(self, run_id: str, runs_dir: Path, *, arm: str | None = None, keys: Keys | None = None,
                 limits: Limits = Limits(), read_cache: bool = True):
        self.args = (run_id, runs_dir)
        self.kwargs = {"arm": arm, "read_cache": read_cache}
        self.keys = keys or Keys.load(environ={"TUNEWISE_API_KEYS": KEY})
        self.limits = limits
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.ready = threading.Event()
        self.failed: BaseException | None = None
        self.server: uvicorn.Server | None = None
        self.model_id = ""

    async def _main(self) -> None:
        served = await load_arm(*self.args, **self.kwargs)
        self.model_id = served.model_id
        try:
            app = create_app(served, keys=self.keys, limits=self.limits)
            self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                        lifespan="off", access_log=False))
            running = asyncio.ensure_future(self.server.serve())
            while not self.server.started and not running.done():
                await asyncio.sleep(0.01)
            self.ready.set()
            await running
        finally:
            await served.aclose()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            self.failed = e
            self.ready.set()

    def __enter__(self) -> Served:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(120), "the server did not start"
        if self.failed is not None:
            raise self.failed
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def measured(tmp_path, server) -> tuple[str, Path, Path]:
    """A run of zero_shot, rag and self_consistency over the loopback model: (run id, runs dir, task file)."""
    task = write_knowledge_task(tmp_path / "task", server.base_url, ARMS)
    runs = tmp_path / "runs"
    outcome = tunewise.run(task, RunOptions(runs_dir=runs))
    return outcome.store.run_id, runs, task


@pytest.fixture
def serving(measured) -> Iterator[object]:
    def start(arm: str, **kwargs: object) -> Served:
        return Served(measured[0], measured[1], arm=arm, **kwargs)  # type: ignore[arg-type]

    yield start
