"""The offline groundedness check: an answer is grounded when its content words are in one passage put in front
of the model; case, punctuation and stop words do not count, and a bare or made-up answer is not grounded."""

from __future__ import annotations

import pytest

from tunewise.verify import grounded
from tunewise.verify.groundedness import content_words, overlap

PASSAGES = ["The Vega is a schooner. Her home port is Lund, in Skåne.", "The Orion sails from Kemi every spring."]


def test_an_answer_found_in_a_passage_is_grounded():
    assert grounded("home port is Lund", PASSAGES) == 1.0
    assert grounded("Kemi", PASSAGES) == 1.0


def test_case_punctuation_and_articles_do_not_count():
    assert grounded("LUND!", PASSAGES) == 1.0
    assert grounded("the home-port: Lund.", PASSAGES) == 1.0  # "home-port" is "home port" once normalised
    assert content_words("The Vega, in Lund.") == ["vega", "lund"]


def test_enough_overlap_with_one_passage_is_grounded_and_less_is_not():
    answer = "Vega schooner Lund Skåne Oslo"  # 4 of its 5 content words are in the first passage
    assert overlap(answer, PASSAGES[0]) == pytest.approx(0.8)
    assert grounded(answer, PASSAGES) == 1.0
    assert grounded(answer, PASSAGES, min_overlap=0.9) == 0.0
    assert grounded("Vega schooner Oslo Bergen Turku", PASSAGES) == 0.0  # 2 of 5: half made up is not grounded


def test_words_spread_over_passages_are_not_grounded_in_any_one():
    assert overlap("Lund Kemi", PASSAGES[0]) == overlap("Lund Kemi", PASSAGES[1]) == 0.5
    assert grounded("Lund Kemi", PASSAGES) == 0.0


def test_an_unsupported_answer_or_no_passage_is_not_grounded():
    assert grounded("Oslo", PASSAGES) == 0.0
    assert grounded("Lund", []) == 0.0
    assert grounded("4", ["It sailed in 1940."]) == 0.0  # whole words: "4" is not in "1940"


@pytest.mark.parametrize("answer", ["", "   ", "...", "the", "it is"])
def test_an_answer_empty_once_normalised_is_not_grounded(answer):
    assert grounded(answer, [answer, *PASSAGES]) == 0.0
    assert grounded(answer, PASSAGES, min_overlap=0.0) == 0.0
