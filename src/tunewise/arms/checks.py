"""Local soundness checks: cheap, exact critics a task names, preferred to LLM judges when present.

    check: {regex: '^\\d{4}$'}                 # the whole answer must match (re.fullmatch, stripped)
    check: {json_schema: {type: object, ...}}  # the answer parses as JSON (a ```json fence is fine) and validates
    check: python:checks:passes_tests          # passes_tests(answer, fields) -> bool

A `python:` check gets the example's data fields without the target (and without `gold_docs`), so it
can run the task's own tests, e.g. a `test` column of a code task; an answer that makes it raise
fails it. It is resolved like a `python:` metric: a module next to the task file first, then an
installed one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from tunewise.metrics import import_function, parse_json_answer

Check = Callable[[str, Mapping[str, Any]], bool]


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

    def build(self, base_dir: Path | None = None) -> Check:
        """The check as a function of an answer and the example's fields (never its target)."""
        if self.regex is not None:
            pattern = re.compile(self.regex)
            return lambda answer, fields: pattern.fullmatch(answer.strip()) is not None
        if self.json_schema is not None:
            from jsonschema import Draft202012Validator

            validator = Draft202012Validator(self.json_schema)

            def valid(answer: str, fields: Mapping[str, Any]) -> bool:
                parsed = parse_json_answer(answer)
                return parsed is not None and validator.is_valid(parsed)

            return valid
        func = import_function(self.python or "", base_dir)

        def passes(answer: str, fields: Mapping[str, Any]) -> bool:
            try:
                return bool(func(answer, fields))
            except Exception:  # noqa: BLE001 - an answer that makes the check (e.g. the tests) raise fails it
                return False

        return passes
