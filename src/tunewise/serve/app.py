"""The OpenAI-compatible server of a measured arm (FastAPI): chat completions, plain and streamed, the model list,
health and Prometheus metrics, behind API keys, a body limit, a rate limit per key and a request timeout.

    POST /v1/chat/completions   the arm's answer to the last user message; `usage` sums every call it made
    GET  /v1/models             the served arm, as tunewise/<task>/<arm>
    GET  /healthz               ok, and what is served
    GET  /metrics               Prometheus text: requests, latency, tokens, cost, errors by kind, in flight

Streaming sends each choice once it is complete (an arm's vote or gate is decided over whole answers), then
`data: [DONE]`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tunewise.arms.base import Answer
from tunewise.calls.caller import Generation, Usage
from tunewise.data import Query
from tunewise.errors import ModelCallError
from tunewise.serve import requests
from tunewise.serve.access import Keys, RateLimit, retry_after
from tunewise.serve.loader import ServedArm
from tunewise.serve.requests import BadRequest
from tunewise.serve.traffic import Served, record


@dataclass(frozen=True)
class Limits:
    """What one request may ask: its body's size, its query's length, how long it may take, how often a key may call."""

    max_body_bytes: int = 1_000_000
    max_input_chars: int = 20_000
    timeout_s: float = 120.0
    per_minute: float = 600.0


class Metrics:
    """The server's Prometheus metrics, in a registry of its own (so two servers in a process keep apart)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("tunewise_requests", "Chat completion requests, by status", ["status"],
                                registry=self.registry)
        self.latency = Histogram("tunewise_request_seconds", "Chat completion latency", registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.tokens = Counter("tunewise_tokens", "Tokens of the model calls made, by direction", ["direction"],
                              registry=self.registry)
        self.cost = Counter("tunewise_cost_usd", "US$ of the model calls made, at the run's prices", registry=self.registry)
        self.errors = Counter("tunewise_errors", "Failed requests, by kind", ["kind"], registry=self.registry)
        self.in_flight = Gauge("tunewise_in_flight", "Chat completion requests being answered", registry=self.registry)


def _error(status: int, message: str, *, kind: str, param: str | None = None, code: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    """An error as the OpenAI API words it, so clients raise their usual exceptions."""
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status_code=status,
                        headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"the body has {int(declared):,} bytes, more than the {limit:,} allowed", status=413,
                         code="body_too_large")
    body = b""
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise BadRequest(f"the body is over the {limit:,} bytes allowed", status=413, code="body_too_large")
    return body


def create_app(served: ServedArm, *, keys: Keys, limits: Limits = Limits()) -> FastAPI:
    """The ASGI app serving `served` (the caller closes it when the app is done)."""
    app = FastAPI(title=f"tunewise: {served.model_id}", docs_url=None, redoc_url=None, openapi_url=None)
    metrics = Metrics()
    rate = RateLimit(limits.per_minute)
    arm, cls, task = served.arm, type(served.arm), served.task
    created = int(time.time())

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "run_id": served.run_id, "arm": arm.name, "model": served.model_id}

    @app.get("/metrics")
    async def metrics_text() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        try:
            keys.check(request.headers.get("authorization"))
        except ValueError as e:
            return _error(401, str(e), kind="invalid_request_error", code="invalid_api_key")
        return JSONResponse({"object": "list", "data": [
            {"id": served.model_id, "object": "model", "created": created, "owned_by": "tunewise"}]})

    async def answer(request_id: str, query: Query, generation: Generation, n: int) -> tuple[list[Answer], Usage]:
        """n choices: choice i draws sample i of each of its calls, so sampled choices differ and greedy ones agree."""
        callers = [served.caller.for_example(arm.name, request_id, generation=generation, first=i) for i in range(n)]
        answers = await asyncio.gather(*(arm.answer(query, lm) for lm in callers))
        usage = Usage()
        for lm in callers:
            usage.absorb(lm.usage)
        return list(answers), usage

    def _log(request_id: str, key: str | None, status: int, started: float, usage: Usage | None = None,
             error: str | None = None, fields: dict[str, Any] | None = None, text: str | None = None) -> None:
        u = usage or Usage()
        latency = (time.perf_counter() - started) * 1000
        record(served.db, Served(served.run_id, arm.name, request_id, key, status, latency, u.tokens_in, u.tokens_out,
                                 u.cost, error, fields, text))
        metrics.requests.labels(str(status)).inc()
        metrics.latency.observe(latency / 1000)
        metrics.tokens.labels("in").inc(u.tokens_in)
        metrics.tokens.labels("out").inc(u.tokens_out)
        metrics.cost.inc(u.cost)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        started = time.perf_counter()
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        try:
            key = keys.check(request.headers.get("authorization"))
        except ValueError as e:
            metrics.errors.labels("auth").inc()
            metrics.requests.labels("401").inc()
            return _error(401, str(e), kind="invalid_request_error", code="invalid_api_key")
        wait = rate.take(key)
        if wait:
            metrics.errors.labels("rate_limit").inc()
            metrics.requests.labels("429").inc()
            return _error(429, f"rate limit of {limits.per_minute:g} requests a minute per key: retry in {wait:.1f} s",
                          kind="rate_limit_error", code="rate_limit_exceeded", headers={"Retry-After": retry_after(wait)})
        fields = None
        metrics.in_flight.inc()
        try:
            body = requests.parse(await _read_body(request, limits.max_body_bytes))
            if body.model != served.model_id:
                raise BadRequest(f"the model '{body.model}' does not exist here: this server serves '{served.model_id}'",
                                 param="model", status=404, code="model_not_found")
            generation, n = requests.generation(body, cls, arm.name)
            query = requests.query(task, body, request_id, max_chars=limits.max_input_chars)
            fields = query.fields
            answers, usage = await asyncio.wait_for(answer(request_id, query, generation, n), limits.timeout_s)
        except BadRequest as e:
            metrics.errors.labels("bad_request" if e.status == 400 else e.code).inc()
            _log(request_id, key, e.status, started, error=e.message, fields=fields)
            return _error(e.status, e.message, kind="invalid_request_error", param=e.param, code=e.code)
        except asyncio.TimeoutError:
            metrics.errors.labels("timeout").inc()
            _log(request_id, key, 504, started, error="timeout", fields=fields)
            return _error(504, f"the arm did not answer within {limits.timeout_s:g} s", kind="timeout_error")
        except ModelCallError as e:
            metrics.errors.labels("model").inc()
            _log(request_id, key, 502, started, error=str(e), fields=fields)
            return _error(502, f"the model failed: {e}", kind="api_error", code="upstream_error")
        finally:
            metrics.in_flight.dec()
        _log(request_id, key, 200, started, usage, fields=fields, text=answers[0].text)
        usage_json = {"prompt_tokens": usage.tokens_in, "completion_tokens": usage.tokens_out,
                      "total_tokens": usage.tokens_in + usage.tokens_out}
        if body.stream:
            include = bool((body.stream_options or {}).get("include_usage"))
            return StreamingResponse(_stream(request_id, served.model_id, answers, usage_json if include else None),
                                     media_type="text/event-stream")
        return JSONResponse({
            "id": request_id, "object": "chat.completion", "created": int(time.time()), "model": served.model_id,
            "choices": [{"index": i, "message": {"role": "assistant", "content": a.text}, "finish_reason": "stop",
                         "logprobs": None} for i, a in enumerate(answers)],
            "usage": usage_json,
        })

    return app


async def _stream(request_id: str, model: str, answers: list[Answer], usage: dict[str, int] | None) -> AsyncIterator[str]:
    """Server-sent events in the OpenAI format: per choice its role, its content, its finish; then usage; [DONE]."""

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        chunk = {"id": request_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                 "choices": choices, **extra}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    for i, a in enumerate(answers):
        yield event([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        yield event([{"index": i, "delta": {"content": a.text}, "finish_reason": None}])
        yield event([{"index": i, "delta": {}, "finish_reason": "stop"}])
    if usage is not None:
        yield event([], usage=usage)
    yield "data: [DONE]\n\n"

