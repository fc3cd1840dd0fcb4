"""`check:` of the committee arm: a local soundness check, one of a regex, a JSON schema or a python function.

    check: {regex: '^\\d{4}$'}                 # the whole answer must match (re.fullmatch, stripped)
    check: {json_schema: {type: object, ...}}  # the answer parses as JSON (a ```json fence is fine) and validates
    check: python:checks:passes_tests          # passes_tests(answer, fields) -> bool

Only the declaration; `tunewise.arms.checks` builds the function.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class CheckSpec(BaseModel):
    """Exactly one of `regex`, `json_schema` or `python` (also written as the string `python:mod:fn`)."""

    model_config = ConfigDict(extra="forbid")

    regex: str | None = None
    json_schema: dict[str, Any] | None = None
    python: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"python": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _exactly_one(self) -> CheckSpec:
        given = [k for k in ("regex", "json_schema", "python") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a check is one of {regex: ...}, {json_schema: {...}} or python:module:function")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as e:
                raise ValueError(f"bad check regex: {e}") from None
        if self.json_schema is not None:
            from jsonschema import Draft202012Validator
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(self.json_schema)
            except SchemaError as e:
                raise ValueError(f"bad check json_schema: {e.message}") from None
        if self.python is not None and not self.python.startswith("python:"):
            raise ValueError(f"a python check is python:module:function, got '{self.python}'")
        return self
