"""Metrics: score a prediction against a target, 0.0 to 1.0.

Built in: exact, normalized (case, punctuation, whitespace), f1 (token F1), contains, regex
(extract with a pattern, then normalized exact), json (field by field); `python:module:function`
for your own (called as function(prediction, target) -> float | bool).
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunewise.spec.metric import MetricSpec
from tunewise.user_code import import_function

Metric = Callable[[str, str], float]
Normalizer = Callable[[str], str]


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


def build_metric(spec: MetricSpec, base_dir: Path | None = None) -> Metric:
    """The scoring function a metric spec names; a `python:` one is imported from next to the task file
    (`base_dir`) or from the installed packages."""
    simple: dict[str, Metric] = {"exact": exact, "normalized": normalized, "f1": f1, "contains": contains}
    if spec.name in simple:
        return simple[spec.name]
    if spec.name == "regex":
        return regex_metric(spec.pattern or "")
    if spec.name == "json":
        return json_metric(spec.fields)
    func = import_function(spec.name, base_dir)
    return lambda prediction, target: float(func(prediction, target))


def build_normalizer(spec: MetricSpec, base_dir: Path | None = None) -> Normalizer:
    """What a metric treats as the same answer, as a key: answers with equal keys score alike against any
    target. Votes over samples are counted by it (self_consistency, committee).

    A `python:` metric may give its function a `normalize` attribute; otherwise answers are the same when
    their stripped text is."""
    if spec.name in ("normalized", "f1", "contains"):
        return normalize
    if spec.name == "regex":
        extract = _extractor(spec.pattern or "")
        return lambda text: "" if (found := extract(text)) is None else normalize(found)
    if spec.name == "json":
        return lambda text: _json_key(text, spec.fields)
    if spec.name.startswith("python:"):
        custom = getattr(import_function(spec.name, base_dir), "normalize", None)
        if callable(custom):
            return lambda text: str(custom(text))
    return str.strip


def _json_key(text: str, fields: list[str] | None) -> str:
    parsed = parse_json_answer(text)
    if parsed is None:
        return text.strip()
    if fields and isinstance(parsed, dict):
        parsed = {k: parsed.get(k) for k in fields}
    # true and 1 differ in JSON (see json_equal), and json.dumps keeps them apart.
    return json.dumps(parsed, sort_keys=True, ensure_ascii=False)
