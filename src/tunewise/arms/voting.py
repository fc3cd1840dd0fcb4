"""Choosing from a pool of answers: majority votes, judges' verdicts, pairwise Copeland.

Pure functions, no model calls: the arms (`self_consistency`, `committee`) gather the answers and
verdicts, these decide. Answers are compared by a key (the task metric's normalisation), and every
tie goes to the earliest answer, so a choice never depends on anything but the order drawn.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from typing import Literal

Choice = Literal["A", "B"]


def k_schedule(k_max: int) -> list[int]:
    """The pool sizes a maj@k curve is reported at: 1, 2, 4, ... below `k_max`, then `k_max`."""
    ks, k = [], 1
    while k < k_max:
        ks.append(k)
        k *= 2
    return [*ks, k_max]


def majority(keys: Sequence[Hashable]) -> int:
    """Index of the first answer of the most common key; a tie goes to the key that came first."""
    if not keys:
        raise ValueError("majority of an empty pool")
    counts: dict[Hashable, int] = {}
    first: dict[Hashable, int] = {}
    for i, key in enumerate(keys):
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, i)
    return min(first.values(), key=lambda i: (-counts[keys[i]], i))


def majority_picks(keys: Sequence[Hashable], ks: Sequence[int]) -> dict[str, int]:
    """`{"maj@k": index}` for each k: the majority over the first k answers, as lm-evaluation-harness
    reports maj@k from one pool of samples."""
    return {f"maj@{k}": majority(keys[:k]) for k in ks}


def plurality_count(keys: Sequence[Hashable]) -> int:
    """How many answers share the most common key (agreement of a pool)."""
    return max(keys.count(k) for k in set(keys)) if keys else 0


def distinct(keys: Sequence[Hashable]) -> list[int]:
    """Index of the first answer of each key, in order: the pool without repeats."""
    seen: set[Hashable] = set()
    out = []
    for i, key in enumerate(keys):
        if key not in seen:
            seen.add(key)
            out.append(i)
    return out


_YES_NO = re.compile(r"\b(yes|no)\b", re.I)


def parse_yes_no(text: str) -> bool | None:
    """A judge's yes (True) or no (False): the first standalone yes/no word; None when there is none."""
    m = _YES_NO.search(text)
    return None if m is None else m.group(1).lower() == "yes"


_BARE_CHOICE = re.compile(r"^\W*([AB])\W*$", re.I)
_NAMED_CHOICE = re.compile(r"\b(?:answer|option|candidate)\s*\(?([AB])\b", re.I)
_LETTER = re.compile(r"\b([AB])\b")


def parse_choice(text: str) -> Choice | None:
    """A comparator's "A" or "B": a bare letter, "Answer B", or the only one of the capital letters A
    and B standing alone (the article "A" makes a lone "A" in a sentence ambiguous); else None."""
    text = text.strip()
    for pattern in (_BARE_CHOICE, _NAMED_CHOICE):
        m = pattern.search(text)
        if m:
            return m.group(1).upper()  # type: ignore[return-value]
    letters = set(_LETTER.findall(text))
    if len(letters) == 1:
        return letters.pop()  # type: ignore[return-value]
    return None


def pair_preference(first_as_a: Sequence[Choice | None], first_as_b: Sequence[Choice | None]) -> int:
    """Which of two answers the comparators prefer, from votes asked in both orders: +1 the first, -1 the
    second, 0 neither. `first_as_a` are verdicts with the first answer shown as A, `first_as_b` with it
    shown as B; a comparator that always says "A" therefore cancels itself out (position debiasing)."""
    wins = sum(v == "A" for v in first_as_a) + sum(v == "B" for v in first_as_b)
    losses = sum(v == "B" for v in first_as_a) + sum(v == "A" for v in first_as_b)
    return (wins > losses) - (wins < losses)


def copeland(n: int, preferences: Mapping[tuple[int, int], int]) -> list[int]:
    """Copeland scores of n answers: pairs won minus pairs lost. `preferences[(i, j)]` (i < j) is
    pair_preference of i over j; a missing pair counts as a tie."""
    scores = [0] * n
    for (i, j), p in preferences.items():
        scores[i] += p
        scores[j] -= p
    return scores


def copeland_winner(scores: Sequence[int]) -> int:
    """Index of the highest Copeland score; a tie goes to the earliest (the first proposal)."""
    return min(range(len(scores)), key=lambda i: (-scores[i], i))
