"""`tunewise serve`: the arm a run measured, behind an OpenAI-compatible API.

    served = await load_arm(run_id)                   # rebuilt from the run, refused if it cannot be what was measured
    app = create_app(served, keys=Keys.load())        # FastAPI: /v1/chat/completions, /v1/models, /healthz, /metrics
    asgi = app_for(run_id)                            # or an ASGI app that loads the arm at start-up (uvicorn, gunicorn)
    await serve(run_id, host="127.0.0.1", port=8000)  # what the CLI runs: loads, then serves until SIGTERM, draining
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tunewise.errors import InputError
from tunewise.serve.access import Keys
from tunewise.serve.app import Limits, create_app
from tunewise.serve.loader import ServedArm, load_arm

__all__ = ["Keys", "Limits", "ServedArm", "app_for", "create_app", "load_arm", "serve"]


def app_for(run_id: str, runs_dir: Path = Path("runs"), *, arm: str | None = None, keys: Keys | None = None,
            limits: Limits = Limits(), read_cache: bool = True) -> Callable[..., Any]:
    """An ASGI app that loads the arm when the server starts (in the server's event loop) and closes it at the end."""
    served_app: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        served = await load_arm(run_id, runs_dir, arm=arm, read_cache=read_cache)
        served_app["app"] = create_app(served, keys=keys or Keys.load(), limits=limits)
        try:
            yield
        finally:
            await served.aclose()

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            from starlette.applications import Starlette

            await Starlette(lifespan=lifespan)(scope, receive, send)
            return
        await served_app["app"](scope, receive, send)

    return asgi


async def serve(
    run_id: str, runs_dir: Path = Path("runs"), *, arm: str | None = None, host: str = "127.0.0.1", port: int = 8000,
    keys: Keys, limits: Limits = Limits(), read_cache: bool = True, drain_s: float = 30.0,
    on_ready: Callable[[ServedArm, str], None] | None = None,
) -> None:
    """Load the arm (refusing, before anything is bound, what cannot be served), then serve until SIGTERM or
    Ctrl-C; in-flight requests are given `drain_s` seconds to finish."""
    import uvicorn

    _check_can_listen(host, port)
    served = await load_arm(run_id, runs_dir, arm=arm, read_cache=read_cache)
    try:
        config = uvicorn.Config(create_app(served, keys=keys, limits=limits), host=host, port=port, log_level="warning",
                                access_log=False, timeout_graceful_shutdown=int(drain_s), lifespan="off")
        server = uvicorn.Server(config)
        if threading.current_thread() is threading.main_thread():
            # uvicorn drains on SIGTERM, then raises the signal again under the handler it found: let that be a
            # quiet one, so a drained server ends with status 0.
            signal.signal(signal.SIGTERM, lambda *_: None)
        running = asyncio.ensure_future(server.serve())
        while not server.started and not running.done():
            await asyncio.sleep(0.02)
        if server.started and on_ready is not None:
            on_ready(served, f"http://{host}:{port}/v1")
        await running
    finally:
        await served.aclose()


def _check_can_listen(host: str, port: int) -> None:
    """A port already taken (or an address not ours) is told before the arm is loaded, in one line."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as e:
        raise InputError(f"cannot listen on {host}:{port}: {e.strerror}") from None
