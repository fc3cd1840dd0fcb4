"""Whether an answer is supported by the passages put in front of the model: an offline, lexical check.

Texts are compared as content words: lower-cased, punctuation dropped (as the `normalized` metric does), then
stop words and articles left out. An answer is grounded when enough of its content words are in one passage.
This is answer-in-passage by normalised overlap, not entailment: it catches an answer the passages never state,
not one that reuses a passage's words against it ("Lyon, not Paris" is grounded in "Paris, not Lyon").
"""

from __future__ import annotations

from collections.abc import Sequence

from tunewise.metrics import normalize

STOPWORDS = frozenset("a an and are as at be by for from has have in is it its of on or the to was were with".split())


def content_words(text: str) -> list[str]:
    """The text's words normalised (lower case, no punctuation), stop words and articles left out, in order."""
    return [w for w in normalize(text).split() if w not in STOPWORDS]


def overlap(answer: str, passage: str) -> float:
    """The share of the answer's content words (counted with repeats) that the passage holds; 0.0 for an answer
    with none."""
    return _share(content_words(answer), passage)


def grounded(answer: str, passages: Sequence[str], *, min_overlap: float = 0.8) -> float:
    """1.0 when at least `min_overlap` of the answer's content words are in a single passage (an answer found
    verbatim in a passage, once normalised, has them all), else 0.0, as is an answer empty once normalised.
    Below the bar it is 0: an answer half made up is not half grounded."""
    words = content_words(answer)
    return float(bool(words) and any(_share(words, p) >= min_overlap for p in passages))


def _share(words: Sequence[str], passage: str) -> float:
    if not words:
        return 0.0
    held = set(content_words(passage))
    return sum(w in held for w in words) / len(words)
