"""Rule-based checks a synthetic sample meets at each checkpoint, scored in [0, 1].

Each validator starts at a stage (S1 the input, S2 the first part of the answer, S3 the whole answer) and is
asked again at every later checkpoint, so the check at S3 is the same whether the sample was stopped early or
generated in full (generate-then-filter). A sample's utility is the product of the scores; below the task's
threshold it is stopped. A validator answers None when it has nothing to say about this draft.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.errors import InputError
from tunewise.metrics import normalize, parse_json_answer
from tunewise.spec import MetricSpec, ValidatorSpec
from tunewise.near_duplicates import NearDuplicates
from tunewise.synth.format import ANSWER_MARKER, END_MARKER, INPUT_MARKER
from tunewise.user_code import import_function
from tunewise.verify.groundedness import content_words, overlap

STAGES = (1, 2, 3)


@dataclass(frozen=True)
class Draft:
    """A sample as far as it has been written: at `stage`, its input, the answer so far, and its source chunk."""

    stage: int
    input: str
    answer: str
    chunk: str | None = None
    truncated: bool = False


@dataclass(frozen=True)
class Score:
    """A validator's verdict: the score and, below 1, why."""

    value: float
    reason: str = ""


Check = Callable[[Draft], "Score | None"]


@dataclass(frozen=True)
class Validator:
    """A named check and the first stage it applies at."""

    name: str
    stage: int
    check: Check


HEDGES = (
    "i'm not sure", "i am not sure", "not sure", "i don't know", "i do not know", "as an ai", "i cannot", "i can't",
    "i'm unable", "i am unable", "it is unclear", "it's unclear", "i think", "i believe", "maybe", "perhaps",
    "possibly", "it might be", "probably", "i guess", "no information", "hypothetical", "fictional",
)
_ARITHMETIC = re.compile(r"(-?\d+(?:\.\d+)?)\s*([-+*/×x÷])\s*(-?\d+(?:\.\d+)?)\s*=\s*(-?\d+(?:\.\d+)?)")


def _ok(condition: bool, reason: str) -> Score:
    return Score(1.0, "") if condition else Score(0.0, reason)


def well_posed(*, question: bool = True, min_words: int = 3, max_words: int = 120) -> Check:
    """The input is a question (ends with '?') of a sensible length."""

    def check(draft: Draft) -> Score:
        words = len(draft.input.split())
        if words < min_words:
            return Score(0.0, f"input of {words} words (< {min_words})")
        if words > max_words:
            return Score(0.0, f"input of {words} words (> {max_words})")
        return _ok(not question or draft.input.rstrip().endswith("?"), "the input is not a question")

    return check


def hedging(*, phrases: Sequence[str] = ()) -> Check:
    """The answer hedges or disclaims ("I'm not sure", "as an AI"): a sign of a made-up or refused answer."""
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in (*HEDGES, *phrases)) + r")\b", re.I)

    def check(draft: Draft) -> Score:
        found = pattern.search(draft.answer.replace("’", "'"))
        return _ok(found is None, f"hedges: '{found.group(0)}'" if found else "")

    return check


def markers() -> Check:
    """The shape holds: an input before the answer marker, no marker repeated, no answer cut off by the budget."""
    repeated = re.compile(rf"(?:{re.escape(INPUT_MARKER)}|{re.escape(ANSWER_MARKER)})")

    def check(draft: Draft) -> Score:
        if not draft.input:
            return Score(0.0, "the answer marker comes before any input")
        if repeated.search(draft.input):
            return Score(0.0, "a marker repeated inside the input")
        if repeated.search(draft.answer):
            return Score(0.0, "a marker repeated inside the answer")
        if draft.stage == 3 and not draft.answer:
            return Score(0.0, "no answer")
        if draft.stage == 3 and draft.truncated:
            return Score(0.0, f"cut off before {END_MARKER}")
        return Score(1.0)

    return check


def _value(text: str) -> float:
    return float(text)


def arithmetic(*, tolerance: float = 1e-6) -> Check:
    """Every `a op b = c` the text states is recomputed."""
    ops: dict[str, Callable[[float, float], float]] = {
        "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "x": lambda a, b: a * b,
        "×": lambda a, b: a * b, "/": lambda a, b: a / b if b else float("nan"), "÷": lambda a, b: a / b if b else float("nan"),
    }

    def check(draft: Draft) -> Score | None:
        stated = list(_ARITHMETIC.finditer(f"{draft.input}\n{draft.answer}"))
        if not stated:
            return None
        for m in stated:
            a, op, b, c = _value(m.group(1)), m.group(2), _value(m.group(3)), _value(m.group(4))
            right = ops[op](a, b)
            if not abs(right - c) <= tolerance * max(1.0, abs(right)):
                return Score(0.0, f"{m.group(0)} is wrong ({right:g})")
        return Score(1.0)

    return check


def parses(metric: MetricSpec) -> Check:
    """The answer is one the task's metric can score: its regex finds it, its JSON parses with the fields, or it
    is not empty once normalised."""

    def check(draft: Draft) -> Score:
        answer = draft.answer
        if metric.name == "regex" and metric.pattern:
            return _ok(re.search(metric.pattern, answer) is not None, "the metric's pattern does not match")
        if metric.name == "json":
            value = parse_json_answer(answer)
            if value is None:
                return Score(0.0, "the answer is not JSON")
            missing = [f for f in metric.fields or () if not isinstance(value, dict) or f not in value]
            return _ok(not missing, f"the JSON lacks {', '.join(missing)}")
        return _ok(bool(normalize(answer)), "the answer is empty once normalised")

    return check


def grounded(*, min_overlap: float = 0.8) -> Check:
    """At least `min_overlap` of the answer's content words are in the chunk it was generated from (no chunk:
    nothing to say). Below the bar it scores 0: an answer half made up is not half grounded."""

    def check(draft: Draft) -> Score | None:
        if draft.chunk is None or not content_words(draft.answer):
            return None
        share = overlap(draft.answer, draft.chunk)
        return Score(1.0) if share >= min_overlap else Score(0.0, f"{share:.0%} of the answer's words are in its chunk")

    return check


def duplicate(references: NearDuplicates) -> Check:
    """The input is no near-copy (ROUGE-L) of train, dev or test inputs, or of an accepted sample: a synthetic
    example that copies an evaluation input would leak it into training."""

    def check(draft: Draft) -> Score:
        match = references.match(draft.input)
        if match is None:
            return Score(1.0)
        return Score(0.0, f"near-copy of a {match.kind} input (ROUGE-L {match.rouge_l:.2f}): {match.text[:80]}")

    return check


def user_check(ref: str, base_dir: Path | None) -> Check:
    """`python:module:function`, called with the Draft; a float or bool in [0, 1], or None."""
    try:
        function = import_function(ref, base_dir, role="validator")
    except ValueError as e:
        raise InputError(str(e).removeprefix(f"{ref}: ")) from None

    def check(draft: Draft) -> Score | None:
        value: Any = function(draft)
        if value is None:
            return None
        if isinstance(value, Score):
            return value
        score = float(value)
        if not 0.0 <= score <= 1.0:
            raise InputError(f"validator {ref} returned {score:g}; a score is between 0 and 1")
        return Score(score, "" if score >= 1 else f"{ref} scored {score:g}")

    return check


FIRST_STAGE = {"well_posed": 1, "duplicate": 1, "markers": 1, "hedging": 2, "arithmetic": 2, "parses": 3, "grounded": 3}


def build_validators(
    specs: Sequence[ValidatorSpec], *, metric: MetricSpec, references: NearDuplicates, base_dir: Path | None,
    error: Callable[[str, int], InputError],
) -> list[Validator]:
    """The validators a `synth:` block lists, with their options; `error(message, i)` locates a bad entry."""
    made = []
    for i, spec in enumerate(specs):
        try:
            made.append(_validator(spec, metric=metric, references=references, base_dir=base_dir))
        except InputError as e:
            raise error(f"validator {spec.name}: {e.message}", i) from None
    return made


def _validator(spec: ValidatorSpec, *, metric: MetricSpec, references: NearDuplicates, base_dir: Path | None) -> Validator:
    if spec.name.startswith("python:"):
        options = dict(spec.options)
        stage = options.pop("stage", 2)
        if options:
            raise InputError(f"unknown option '{next(iter(options))}' (a python: validator takes only stage)")
        if stage not in STAGES:
            raise InputError("stage must be 1, 2 or 3")
        return Validator(spec.name, stage, user_check(spec.name, base_dir))
    try:
        check = _builtin(spec.name, spec.options, metric=metric, references=references)
    except TypeError as e:
        unknown = re.search(r"unexpected keyword argument '([^']+)'", str(e))
        raise InputError(f"unknown option '{unknown.group(1)}'" if unknown else str(e)) from None
    return Validator(spec.name, FIRST_STAGE[spec.name], check)


def _builtin(name: str, options: dict[str, Any], *, metric: MetricSpec, references: NearDuplicates) -> Check:
    if name == "duplicate":
        rest = dict(options)
        bound = rest.pop("max_rouge_l", None)
        if rest:
            raise InputError(f"unknown option '{next(iter(rest))}'")
        if bound is not None:
            references.max_rouge_l = float(bound)
        return duplicate(references)
    if name == "parses":
        if options:
            raise InputError(f"unknown option '{next(iter(options))}'")
        return parses(metric)
    factories: dict[str, Callable[..., Check]] = {
        "well_posed": well_posed, "hedging": hedging, "markers": markers, "arithmetic": arithmetic, "grounded": grounded,
    }
    return factories[name](**options)
