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

from tunewise.metrics import parse_json_answer
from tunewise.spec import CheckSpec
from tunewise.user_code import import_function

Check = Callable[[str, Mapping[str, Any]], bool]


def build_check(spec: CheckSpec, base_dir: Path | None = None) -> Check:
    """The check as a function of an answer and the example's fields (never its target)."""
    if spec.regex is not None:
        pattern = re.compile(spec.regex)
        return lambda answer, fields: pattern.fullmatch(answer.strip()) is not None
    if spec.json_schema is not None:
        from jsonschema import Draft202012Validator

        validator = Draft202012Validator(spec.json_schema)

        def valid(answer: str, fields: Mapping[str, Any]) -> bool:
            parsed = parse_json_answer(answer)
            return parsed is not None and validator.is_valid(parsed)

        return valid
    func = import_function(spec.python or "", base_dir, role="check")

    def passes(answer: str, fields: Mapping[str, Any]) -> bool:
        try:
            return bool(func(answer, fields))
        except Exception:  # noqa: BLE001 - an answer that makes the check (e.g. the tests) raise fails it
            return False

    return passes
