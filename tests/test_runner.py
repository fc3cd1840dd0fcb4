"""The runner's trust measures of an answer: stale against the example's stale answers (as the metric judges, never
when the answer is right), abstained as the arm said, grounded in the passages it retrieved; and results.jsonl
lines recorded before these fields still read."""

from __future__ import annotations

import pytest

from tunewise.arms.base import Answer, Result, Retrieved
from tunewise.calls.caller import Usage
from tunewise.data import Example
from tunewise.evaluation.runner import scored
from tunewise.metrics import contains, normalized


def example(target: str = "Kemi", stale: tuple[str, ...] = ("Lund",)) -> Example:
    return Example("s0", "What is the home port of the Vega?", target, "test", stale_answers=stale)


def score(answer: Answer | None, ex: Example | None = None, metric=normalized) -> Result:
    return scored("arm", ex or example(), answer, None if answer else "HTTP 500", metric, Usage())


def test_an_answer_is_stale_when_it_is_a_stale_answer_as_the_metric_normalises():
    assert score(Answer("lund.")).stale is True
    assert score(Answer("Kemi")).stale is False
    assert score(Answer("Oslo")).stale is False  # wrong, but not what a stale premise gives


def test_stale_is_unknown_without_stale_answers_or_without_an_answer():
    assert score(Answer("Lund"), example(stale=())).stale is None
    assert score(None).stale is None


def test_a_right_answer_is_never_stale_even_when_it_also_states_the_stale_one():
    r = score(Answer("Kemi, formerly Lund"), metric=contains)
    assert r.score == 1.0 and r.stale is False
    assert score(Answer("it was Lund"), metric=contains).stale is True


def test_an_abstention_is_recorded_and_is_neither_stale_nor_checked_for_groundedness():
    said = "I can't answer that from what still holds: Lund was superseded."
    r = score(Answer(said, retrieved=[Retrieved("d1", said)], abstained="Lund was superseded"), metric=contains)
    assert r.abstained and r.stale is False and r.grounded is None
    assert not score(Answer("Kemi")).abstained


def test_groundedness_is_checked_against_the_passages_retrieved():
    passages = [Retrieved("d1", "Since May the Vega's home port is Kemi.")]
    assert score(Answer("Kemi", retrieved=passages)).grounded == 1.0
    assert score(Answer("Oslo", retrieved=passages)).grounded == 0.0
    assert score(Answer("Kemi", retrieved=[])).grounded is None  # nothing retrieved: nothing to check
    assert score(Answer("Kemi")).grounded is None


def test_trust_fields_round_trip_and_old_lines_read_without_them():
    r = score(Answer("Lund", retrieved=[Retrieved("d1", "Lund")]))
    assert Result.from_json(r.to_json()) == r
    old = {k: v for k, v in r.to_json().items() if k not in ("stale", "abstained", "grounded")}
    back = Result.from_json(old)
    assert (back.stale, back.abstained, back.grounded) == (None, False, None)
    with pytest.raises(ValueError, match="grounded: 1.5 is not between 0 and 1"):
        Result.from_json({**r.to_json(), "grounded": 1.5})
