"""Headless Chromium driven over the Chrome DevTools Protocol: load a page, wait for a condition, and
collect what the console said and which URLs the page tried to fetch."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--remote-debugging-port=0",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageLoad:
    """What happened when a page loaded: console errors, uncaught exceptions, and every URL requested."""

    value: Any = None
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


class Chromium:
    """One headless browser with a fresh profile; `load` opens a page in its first tab."""

    def __init__(self, executable: str):
        self.profile = Path(tempfile.mkdtemp(prefix="tunewise-chromium-"))
        self.process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self._next_id = 0

    def _send(self, method: str, params: dict[str, Any] | None = None, load: PageLoad | None = None) -> dict[str, Any]:
        self._next_id += 1
        self.ws.send(json.dumps({"id": self._next_id, "method": method, "params": params or {}}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if load is not None:
                self._record(message, load)

    @staticmethod
    def _record(event: dict[str, Any], load: PageLoad) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert", "warning"):
            load.errors.append(f"console.{params['type']}: " + " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            load.errors.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") in ("error", "warning"):
            load.errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            load.requests.append(params.get("request", {}).get("url", ""))

    def load(self, url: str, ready: str, timeout_s: float = 30) -> PageLoad:
        """Open `url` and poll the JavaScript expression `ready` until it is truthy; its value is returned."""
        load = PageLoad()
        for domain in ("Runtime", "Log", "Network", "Page"):
            self._send(f"{domain}.enable", load=load)
        self._send("Page.navigate", {"url": url}, load=load)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            result = self._send("Runtime.evaluate", {"expression": ready, "returnByValue": True}, load=load)
            value = result.get("result", {}).get("value")
            if value:
                load.value = value
                break
            time.sleep(0.1)
        # Let late console messages arrive: a short quiet period after the page is ready.
        self._send("Runtime.evaluate", {"expression": "new Promise(r => setTimeout(r, 300))", "awaitPromise": True}, load=load)
        return load

    def screenshot(self, path: Path) -> None:
        import base64

        data = self._send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
