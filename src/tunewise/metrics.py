"""Metrics: score a prediction against a target, 0.0 to 1.0.

Built in: exact, normalized (case, punctuation, whitespace), f1 (token F1), contains, regex
(extract with a pattern, then normalized exact), json (field by field); `python:module:function`
for your own (called as function(prediction, target) -> float | bool).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import string
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator

Metric = Callable[[str, str], float]
Normalizer = Callable[[str], str]

BUILTIN = ("exact", "normalized", "f1", "contains", "regex", "json")


def _is_punctuation(ch: str) -> bool:
    return ch in string.punctuation or unicodedata.category(ch).startswith("P")


def normalize(text: str) -> str:
    """Lower-case, drop punctuation (ASCII and Unicode), collapse whitespace."""
    return " ".join("".join(" " if _is_punctuation(ch) else ch for ch in text.lower()).split())


def exact(prediction: str, target: str) -> float:
    return float(prediction.strip() == target.strip())


def normalized(prediction: str, target: str) -> float:
    return float(normalize(prediction) == normalize(target))


def f1(prediction: str, target: str) -> float:
    """SQuAD-style token F1 over normalized tokens."""
    pred, gold = normalize(prediction).split(), normalize(target).split()
    if not pred or not gold:
        return float(pred == gold)
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def contains(prediction: str, target: str) -> float:
    """The normalized target appears in the prediction as whole words ("no" is not in "know")."""
    return float(f" {normalize(target)} " in f" {normalize(prediction)} ")


def regex_metric(pattern: str) -> Metric:
    """Extract the first match (group 1 if the pattern has groups) and compare it normalized."""
    extract = _extractor(pattern)

    def score(prediction: str, target: str) -> float:
        extracted = extract(prediction)
        return 0.0 if extracted is None else normalized(extracted, target)

    return score


def _extractor(pattern: str) -> Callable[[str], str | None]:
    """The first match of `pattern` in a text (group 1 if the pattern has groups), or None."""
    compiled = re.compile(pattern)

    def extract(text: str) -> str | None:
        m = compiled.search(text)
        return (m.group(1) if compiled.groups else m.group(0)) if m else None

    return extract


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


def parse_json_answer(text: str) -> Any:
    """Parse a JSON answer, tolerating a ```json fence around it; None when it is not JSON."""
    text = text.strip()
    m = _FENCE.match(text)
    if m:
        text = m.group(1)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality where true is not 1 (Python's == says it is)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return a == b


def json_metric(fields: list[str] | None = None) -> Metric:
    """Fraction of the target's fields (or the named ones) the prediction gets equal."""

    def score(prediction: str, target: str) -> float:
        gold = parse_json_answer(target)
        pred = parse_json_answer(prediction)
        if not isinstance(gold, dict):
            return float(pred is not None and json_equal(pred, gold))
        if not isinstance(pred, dict):
            return 0.0
        keys = fields or list(gold)
        if not keys:
            return float(json_equal(pred, gold))
        return sum(k in pred and json_equal(pred[k], gold.get(k)) for k in keys) / len(keys)

    return score


def _import_module(module_name: str, base_dir: Path | None) -> Any:
    """A module next to the task file wins, loaded under a name unique to its path (two tasks may
    each have their own `scorer.py`); otherwise an installed module."""
    local = base_dir / f"{module_name.replace('.', '/')}.py" if base_dir is not None else None
    if local is None or not local.is_file():
        return importlib.import_module(module_name)
    unique = f"_tunewise_metric_{hashlib.sha256(str(local.resolve()).encode()).hexdigest()[:12]}_{module_name}"
    if unique in sys.modules:
        return sys.modules[unique]
    spec = importlib.util.spec_from_file_location(unique, local)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[unique]
        raise
    return module


def import_function(ref: str, base_dir: Path | None) -> Callable[..., Any]:
    _, module_name, func_name = (ref.split(":", 2) + ["", ""])[:3]
    if not module_name or not func_name:
        raise ValueError(f"custom metric must be python:module:function, got '{ref}'")
    try:
        module = _import_module(module_name, base_dir)
    except Exception as e:  # noqa: BLE001 - any failure to import is the user's to see
        raise ValueError(f"cannot import metric module '{module_name}': {e}") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ValueError(f"module '{module_name}' has no function '{func_name}'")
    return func


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
    def _check(self, info: ValidationInfo) -> MetricSpec:
        if self.name.startswith("python:"):
            base_dir = (info.context or {}).get("base_dir")
            import_function(self.name, Path(base_dir) if base_dir else None)
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

    def build(self, base_dir: Path | None = None) -> Metric:
        """The scoring function this spec names."""
        simple: dict[str, Metric] = {"exact": exact, "normalized": normalized, "f1": f1, "contains": contains}
        if self.name in simple:
            return simple[self.name]
        if self.name == "regex":
            return regex_metric(self.pattern or "")
        if self.name == "json":
            return json_metric(self.fields)
        func = import_function(self.name, base_dir)
        return lambda prediction, target: float(func(prediction, target))

    def normalizer(self, base_dir: Path | None = None) -> Normalizer:
        """What this metric treats as the same answer, as a key: answers with equal keys score alike
        against any target. Votes over samples are counted by it (self_consistency, committee).

        A `python:` metric may give its function a `normalize` attribute; otherwise answers are the
        same when their stripped text is."""
        if self.name in ("normalized", "f1", "contains"):
            return normalize
        if self.name == "regex":
            extract = _extractor(self.pattern or "")
            return lambda text: "" if (found := extract(text)) is None else normalize(found)
        if self.name == "json":
            return self._json_key
        if self.name.startswith("python:"):
            custom = getattr(import_function(self.name, base_dir), "normalize", None)
            if callable(custom):
                return lambda text: str(custom(text))
        return str.strip

    def _json_key(self, text: str) -> str:
        parsed = parse_json_answer(text)
        if parsed is None:
            return text.strip()
        if self.fields and isinstance(parsed, dict):
            parsed = {k: parsed.get(k) for k in self.fields}
        # true and 1 differ in JSON (see json_equal), and json.dumps keeps them apart.
        return json.dumps(parsed, sort_keys=True, ensure_ascii=False)
