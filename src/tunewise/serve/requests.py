"""A chat completion request, as the served arm can take it: its query, and the generation settings it asks for.

The query is the last user message. For a task with one input field it is that field's value; for a task with
several, the message is a JSON object of them. It is rendered as the run rendered its examples (the task's
template, or `field: value` lines). System messages and earlier turns are not shown to the arm: the arm's
prompt is the one measured. Whatever the arm cannot honour is refused with a 400 naming the parameter.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tunewise.arms.base import Arm
from tunewise.calls.caller import Generation
from tunewise.data import InputRenderer, Query
from tunewise.spec import Task

# Features no arm offers: a request that asks for one is refused (at the values that ask for nothing, accepted).
UNSUPPORTED: dict[str, Any] = {
    "tools": None, "tool_choice": None, "functions": None, "function_call": None, "response_format": None,
    "logprobs": False, "top_logprobs": None, "logit_bias": None, "top_p": 1, "presence_penalty": 0,
    "frequency_penalty": 0, "audio": None, "modalities": None, "prediction": None,
}


class BadRequest(Exception):
    """A request the served arm cannot take: a 400, naming the parameter when one is at fault."""

    def __init__(self, message: str, param: str | None = None, status: int = 400, code: str = "invalid_request"):
        super().__init__(message)
        self.message, self.param, self.status, self.code = message, param, status, code


class ChatCompletionRequest(BaseModel):
    """The fields of an OpenAI chat completion request tunewise reads; others are checked against UNSUPPORTED."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    n: int = Field(1, ge=1, le=16)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    user: str | None = None


def parse(body: bytes) -> ChatCompletionRequest:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest(f"the body is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    try:
        request = ChatCompletionRequest.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        param = ".".join(str(p) for p in err["loc"])
        raise BadRequest(f"{param}: {err['msg']}", param=param) from None
    for name, value in (request.model_extra or {}).items():
        if name in UNSUPPORTED and value not in (None, UNSUPPORTED[name]):
            raise BadRequest(f"parameter '{name}' is not supported by tunewise serve", param=name)
    return request


def generation(request: ChatCompletionRequest, cls: type[Arm], arm: str) -> tuple[Generation, int]:
    """The settings the request asks for and the number of choices, refusing what the arm does not honour."""
    max_tokens = request.max_completion_tokens or request.max_tokens
    stop = (request.stop,) if isinstance(request.stop, str) else tuple(request.stop or ())
    asked = {"n": request.n != 1, "temperature": request.temperature is not None, "max_tokens": max_tokens is not None,
             "stop": bool(stop)}
    for name, set_ in asked.items():
        if set_ and name not in cls.serves:
            why = " (it decides how it samples and votes itself)" if name in ("n", "temperature") else ""
            raise BadRequest(f"parameter '{name}' is not supported by arm '{arm}'{why}", param=name)
    return Generation(temperature=request.temperature, max_tokens=max_tokens, stop=stop), request.n


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise BadRequest("the user message must be text", param="messages")


def query(task: Task, request: ChatCompletionRequest, request_id: str, *, max_chars: int) -> Query:
    """The query the arm answers: the last user message, as the task's input (see the module docstring)."""
    users = [m for m in request.messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise BadRequest("no user message: the last user message is the query", param="messages")
    content = _text(users[-1].get("content"))
    if len(content) > max_chars:
        raise BadRequest(f"the query has {len(content):,} characters, more than the {max_chars:,} allowed",
                         param="messages")
    names = task.data.input_fields
    if len(names) == 1:
        fields: dict[str, Any] = {names[0]: content}
    else:
        try:
            fields = json.loads(content)
        except json.JSONDecodeError:
            fields = None
        if not isinstance(fields, dict):
            raise BadRequest(f"this task's input has several fields ({', '.join(names)}): send them as a JSON"
                             " object in the user message", param="messages")
        missing = [n for n in names if n not in fields]
        if missing:
            raise BadRequest(f"the user message lacks the input field(s) {', '.join(missing)}", param="messages")
    try:
        text = InputRenderer(task.data)(fields)
    except Exception as e:  # noqa: BLE001 - a template the fields do not fit is the client's to fix
        raise BadRequest(f"the input does not fit the task's template: {e}", param="messages") from None
    return Query(request_id, text, fields)
