"""`openai:<model>` — any OpenAI-compatible server through the official `openai` SDK.

Retries are ours (the SDK's are turned off) so that every attempt is bounded, honours
Retry-After on 429 and 5xx, backs off on timeouts and dropped connections, and is counted.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import time
from typing import TYPE_CHECKING

from tunewise.errors import InputError, ModelCallError
from tunewise.models.base import ChatRequest, Completion

if TYPE_CHECKING:
    import httpx
    import openai

    from tunewise.task import ModelSpec

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


class OpenAIModel:
    """Chat completions against an OpenAI-compatible endpoint, with bounded concurrency and retries."""

    def __init__(self, spec: ModelSpec, *, backoff_base_s: float = 0.25, backoff_max_s: float = 20.0):
        import openai

        api_key = os.environ.get(spec.api_key_env)
        if not api_key:
            if spec.base_url is None:
                raise InputError(f"environment variable {spec.api_key_env} is not set (needed for {spec.uri})")
            api_key = "unused"
        self.id = spec.uri
        self.name = spec.name
        self.max_retries = spec.max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.retries = 0
        self._openai = openai
        self._client_args = {"api_key": api_key, "base_url": spec.base_url, "timeout": spec.timeout_s}
        self._client: openai.AsyncOpenAI | None = None
        self._slots = asyncio.Semaphore(spec.max_concurrency)

    @property
    def client(self) -> openai.AsyncOpenAI:
        """Made on first use: building it costs ~40 ms (TLS set-up), wasted when every call is cached."""
        if self._client is None:
            self._client = self._openai.AsyncOpenAI(**self._client_args, max_retries=0)
        return self._client

    async def complete(self, request: ChatRequest, n: int = 1) -> list[Completion]:
        """n samples; servers that ignore `n` are asked again until there are n."""
        completions: list[Completion] = []
        while len(completions) < n:
            completions.extend(await self._call(request, n - len(completions)))
        return completions[:n]

    async def _call(self, request: ChatRequest, n: int) -> list[Completion]:
        kwargs: dict[str, object] = {
            "model": self.name,
            "messages": request.message_dicts(),
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if n > 1:
            kwargs["n"] = n
        if request.stop:
            kwargs["stop"] = list(request.stop)
        async with self._slots:
            for attempt in range(self.max_retries + 1):
                start = time.perf_counter()
                try:
                    response = await self.client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
                except Exception as e:  # noqa: BLE001 - every SDK error is classified right below
                    error = self._classify(e)
                    if not error.retryable or attempt == self.max_retries:
                        raise error from e
                    self.retries += 1
                    await asyncio.sleep(self._wait(attempt, e))
                    continue
                latency_ms = (time.perf_counter() - start) * 1000
                return self._completions(response, latency_ms)
        raise AssertionError("unreachable")

    def _completions(self, response: object, latency_ms: float) -> list[Completion]:
        usage = getattr(response, "usage", None)
        choices = getattr(response, "choices", None) or []
        if not choices:
            raise ModelCallError("the server returned no choices", retryable=False)
        prompt_tokens = getattr(usage, "prompt_tokens", 0) or 0
        completion_tokens = getattr(usage, "completion_tokens", 0) or 0
        out = []
        for i, choice in enumerate(choices):
            # Usage covers the whole response: the prompt is billed once, the answers share the rest.
            share = completion_tokens // len(choices) + (1 if i < completion_tokens % len(choices) else 0)
            out.append(
                Completion(
                    text=choice.message.content or "",
                    tokens_in=prompt_tokens if i == 0 else 0,
                    tokens_out=share,
                    latency_ms=latency_ms,
                    finish_reason=choice.finish_reason or "stop",
                )
            )
        return out

    def _classify(self, e: Exception) -> ModelCallError:
        openai = self._openai
        if isinstance(e, openai.APIStatusError):
            retryable = e.status_code in (408, 409, 429) or e.status_code >= 500
            return ModelCallError(
                f"HTTP {e.status_code}: {e.message}",
                status=e.status_code,
                request_id=e.request_id,
                retryable=retryable,
            )
        if isinstance(e, openai.APITimeoutError):
            return ModelCallError("request timed out", retryable=True)
        if isinstance(e, openai.APIConnectionError):
            return ModelCallError(f"connection failed: {e.__cause__ or e}", retryable=True)
        return ModelCallError(f"{type(e).__name__}: {e}", retryable=False)

    def _wait(self, attempt: int, e: Exception) -> float:
        asked = retry_after_seconds(getattr(getattr(e, "response", None), "headers", None))
        if asked is not None:
            return min(asked, _MAX_RETRY_AFTER_S)
        return min(self.backoff_max_s, self.backoff_base_s * 2**attempt) * (0.5 + random.random() / 2)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
