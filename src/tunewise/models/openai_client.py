"""One OpenAI-compatible server reached through the official `openai` SDK, with our own retries.

Shared by the chat backend (`openai:<model>`) and the embedding endpoint (`knowledge.embedder`).
Retries are ours (the SDK's are turned off) so that every attempt is bounded, honours
Retry-After on 429 and 5xx, backs off on timeouts and dropped connections, and is counted.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from tunewise.errors import InputError, ModelCallError

if TYPE_CHECKING:
    import httpx
    import openai

    from tunewise.spec import EndpointSpec

T = TypeVar("T")
_MAX_RETRY_AFTER_S = 120.0


def retry_after_seconds(headers: httpx.Headers | None) -> float | None:
    """The wait a server asked for: `retry-after-ms`, or `retry-after` in seconds or as an HTTP date."""
    if headers is None:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


_REFUSING = (401, 403, 404)  # the key, the access or the model (or path) is wrong: for every request alike


def _cannot_connect(cause: BaseException | None) -> bool:
    """Whether the SDK's transport could not connect at all (refused, unresolvable): httpx's ConnectError, of
    whichever httpx the installed SDK is built on (httpx, or httpx2 in later openai releases)."""
    return cause is not None and any(
        c.__name__ == "ConnectError" and c.__module__.startswith("httpx") for c in type(cause).__mro__
    )


def classify(e: Exception) -> ModelCallError:
    """An SDK exception as a ModelCallError that says whether trying again can help, and whether the endpoint
    refuses every call (a refusing status, or no server to connect to: `stops_run`)."""
    import openai

    if isinstance(e, openai.APIStatusError):
        retryable = e.status_code in (408, 409, 429) or e.status_code >= 500
        said = e.message.removeprefix(f"Error code: {e.status_code} - ")  # the SDK's prefix repeats the status
        return ModelCallError(
            f"HTTP {e.status_code}: {said}", status=e.status_code, request_id=e.request_id, retryable=retryable,
            stops_run=e.status_code in _REFUSING,
        )
    if isinstance(e, openai.APITimeoutError):
        return ModelCallError("request timed out", retryable=True)
    if isinstance(e, openai.APIConnectionError):
        # Refused or unresolvable: no server there. A dropped connection (a server that is there) is this call's.
        if _cannot_connect(e.__cause__):
            url = urlsplit(str(e.request.url))
            return ModelCallError(f"connection failed: {e.__cause__} (no server at {url.scheme}://{url.netloc})",
                                  retryable=True, stops_run=True)
        return ModelCallError(f"connection failed: {e.__cause__ or e}", retryable=True)
    return ModelCallError(f"{type(e).__name__}: {e}", retryable=False)


class OpenAIEndpoint:
    """An OpenAI-compatible server: an API key from the environment, a client made on first use, and
    `call`, which runs one request with bounded concurrency and retries."""

    def __init__(self, spec: EndpointSpec, *, backoff_base_s: float = 0.25, backoff_max_s: float = 20.0):
        api_key = os.environ.get(spec.api_key_env)
        if not api_key:
            if spec.base_url is None:
                raise InputError(f"environment variable {spec.api_key_env} is not set (needed for {spec.uri})")
            api_key = "unused"
        self.base_url = spec.base_url
        # What a 401 should point to: the variable the key came from, or that it was not set.
        self._key_hint = (f"the API key is read from {spec.api_key_env}" if os.environ.get(spec.api_key_env)
                          else f"{spec.api_key_env} is not set, so no API key was sent")
        self.max_retries = spec.max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.retries = 0
        self._client_args = {"api_key": api_key, "base_url": spec.base_url, "timeout": spec.timeout_s}
        self._client: openai.AsyncOpenAI | None = None
        self._slots = asyncio.Semaphore(spec.max_concurrency)

    @property
    def client(self) -> openai.AsyncOpenAI:
        """Made on first use: building it costs ~40 ms (TLS set-up), wasted when every call is cached."""
        if self._client is None:
            import openai

            self._client = openai.AsyncOpenAI(**self._client_args, max_retries=0)
        return self._client

    async def call(self, request: Callable[[openai.AsyncOpenAI], Awaitable[T]]) -> T:
        """`request(client)`, tried again on 429, 5xx, timeouts and dropped connections up to `max_retries` times."""
        async with self._slots:
            for attempt in range(self.max_retries + 1):
                try:
                    return await request(self.client)
                except Exception as e:  # noqa: BLE001 - every SDK error is classified right below
                    error = classify(e)
                    if not error.retryable or attempt == self.max_retries:
                        if error.status == 401:
                            error = ModelCallError(f"{error} ({self._key_hint})", status=401,
                                                   request_id=error.request_id, stops_run=True)
                        raise error from e
                    self.retries += 1
                    await asyncio.sleep(self._wait(attempt, e))
        raise AssertionError("unreachable")

    def _wait(self, attempt: int, e: Exception) -> float:
        asked = retry_after_seconds(getattr(getattr(e, "response", None), "headers", None))
        if asked is not None:
            return min(asked, _MAX_RETRY_AFTER_S)
        return min(self.backoff_max_s, self.backoff_base_s * 2**attempt) * (0.5 + random.random() / 2)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
