"""`openai:<model>` — chat completions from any OpenAI-compatible server.

Reaching the server, retries and concurrency are `OpenAIEndpoint`'s; this module builds the request
and reads the choices and usage out of the response.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from tunewise.errors import ModelCallError
from tunewise.models.base import ChatRequest, Completion, Piece
from tunewise.models.openai_client import OpenAIEndpoint, classify

if TYPE_CHECKING:
    import openai

    from tunewise.spec import ModelSpec


DEFAULT_BASE_URL = "https://api.openai.com/v1"


def model_id(spec: ModelSpec) -> str:
    """The name answers are cached under: the model at its server (two servers answering under one model name are
    two models), or the model alone with `cache_scope: model`. Never a key."""
    if spec.cache_scope == "model":
        return spec.uri
    return f"{spec.uri}@{(spec.base_url or DEFAULT_BASE_URL).rstrip('/')}"


class OpenAIModel:
    """Chat completions against an OpenAI-compatible endpoint, with bounded concurrency and retries."""

    def __init__(self, spec: ModelSpec, *, backoff_base_s: float = 0.25, backoff_max_s: float = 20.0):
        self.id = model_id(spec)
        self.name = spec.name
        self.endpoint = OpenAIEndpoint(spec, backoff_base_s=backoff_base_s, backoff_max_s=backoff_max_s)

    @property
    def retries(self) -> int:
        """Attempts made again after a retryable failure."""
        return self.endpoint.retries

    async def complete(self, request: ChatRequest, n: int = 1, *, first: int = 0) -> list[Completion]:
        """n samples; servers that ignore `n` are asked again until there are n (the server draws them)."""
        completions: list[Completion] = []
        while len(completions) < n:
            completions.extend(await self._call(request, n - len(completions)))
        return completions[:n]

    def _params(self, request: ChatRequest, n: int = 1) -> dict[str, object]:
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
        return kwargs

    async def _call(self, request: ChatRequest, n: int) -> list[Completion]:
        kwargs = self._params(request, n)

        async def timed(client: openai.AsyncOpenAI) -> tuple[object, float]:
            start = time.perf_counter()
            response = await client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
            return response, (time.perf_counter() - start) * 1000

        return self._completions(*await self.endpoint.call(timed))

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

    async def stream(self, request: ChatRequest, *, sample: int = 0) -> AsyncIterator[Piece]:
        """One sample, streamed (`stream=True`); closing it closes the HTTP response, which ends the generation
        at a server that stops on disconnect. A piece per content delta, one token each (what servers send);
        the prompt's tokens are estimated (4 characters a token) until the closing usage chunk corrects both."""
        kwargs = self._params(request) | {"stream": True, "stream_options": {"include_usage": True}}

        async def opened(client: openai.AsyncOpenAI) -> openai.AsyncStream:
            return await client.chat.completions.create(**kwargs)  # type: ignore[call-overload]

        response = await self.endpoint.call(opened)
        estimated_in = math.ceil(sum(len(content) for _, content in request.messages) / 4)
        tokens_in, tokens_out = 0, 0
        try:
            async for chunk in response:
                delta = chunk.choices[0].delta.content if chunk.choices else None
                if delta:
                    piece = Piece(delta, 1, estimated_in if tokens_out == 0 else 0)
                    tokens_in, tokens_out = tokens_in + piece.tokens_in, tokens_out + 1
                    yield piece
                if chunk.usage is not None:
                    yield Piece("", (chunk.usage.completion_tokens or 0) - tokens_out,
                                (chunk.usage.prompt_tokens or 0) - tokens_in)
        except Exception as e:  # noqa: BLE001 - a stream that breaks mid-way is classified like a failed call
            raise classify(e) from e
        finally:
            await response.close()

    async def aclose(self) -> None:
        await self.endpoint.aclose()
