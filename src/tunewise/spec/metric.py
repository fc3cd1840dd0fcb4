"""`metric:` in a task file: a built-in metric by name, a regex to extract with, or `python:module:function`.

Only the declaration lives here; the scoring functions are `tunewise.metrics`.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

BUILTIN = ("exact", "normalized", "f1", "contains", "regex", "json")
TEXT_METRICS = ("exact", "normalized", "f1", "contains", "regex")  # the built-in metrics that compare answers as text


def python_ref(ref: str) -> tuple[str, str]:
    """The module and the attribute of `python:module:attribute`; ValueError when it has another shape."""
    _, module_name, attribute = (ref.split(":", 2) + ["", ""])[:3]
    if not ref.startswith("python:") or not module_name or not attribute:
        raise ValueError(f"expected python:module:name, got '{ref}'")
    return module_name, attribute


class MetricSpec(BaseModel):
    """`metric: normalized`, `metric: {name: regex, pattern: ...}` or `metric: python:mod:fn`."""

    model_config = ConfigDict(extra="forbid")

    name: str
    pattern: str | None = None
    fields: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check(self) -> MetricSpec:
        if self.name.startswith("python:"):
            try:
                python_ref(self.name)
            except ValueError:
                raise ValueError(f"custom metric must be python:module:function, got '{self.name}'") from None
        elif self.name not in BUILTIN:
            raise ValueError(f"unknown metric '{self.name}' (known: {', '.join(BUILTIN)}, python:module:function)")
        if self.name == "regex":
            if not self.pattern:
                raise ValueError("the regex metric needs `pattern:`")
            try:
                re.compile(self.pattern)
            except re.error as e:
                raise ValueError(f"bad regex pattern: {e}") from None
        return self
