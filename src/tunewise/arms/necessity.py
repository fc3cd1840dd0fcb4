"""Model-adaptive tool necessity: when does *this* model need retrieval, and how well can it tell?

Retrieval is necessary for a query when the model, closed-book, answers it correctly in fewer than
r of k samples. A cheap gate predicts that at inference from the agreement of g closed-book samples
(how many share the most common answer); its threshold is fitted on train, where necessity is
measured. The model's own answer to "do you need to look this up?" against measured necessity is
the knowing-doing gap. Pure functions; the `adaptive_rag` arm makes the calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def is_necessary(correct: int, k: int, r: int) -> bool:
    """Retrieval is necessary when fewer than r of k closed-book samples are correct."""
    if not 0 <= correct <= k or not 1 <= r <= k:
        raise ValueError(f"need 0 <= correct <= k and 1 <= r <= k, got correct={correct}, k={k}, r={r}")
    return correct < r


@dataclass(frozen=True)
class Gate:
    """Retrieve when fewer than `threshold` of the g probe samples share the most common answer.

    threshold 0 never retrieves; g + 1 always does. `train_accuracy` is how often the rule agreed with
    measured necessity on the examples it was fitted on."""

    samples: int
    threshold: int
    train_accuracy: float

    def retrieve(self, agreement: int) -> bool:
        return agreement < self.threshold


def fit_gate(agreements: Sequence[int], necessary: Sequence[bool], samples: int) -> Gate:
    """The threshold that predicts necessity best on train; among equally good ones the highest, which
    retrieves the most (a missed retrieval costs score, an extra one only tokens). No examples: always
    retrieve."""
    if len(agreements) != len(necessary):
        raise ValueError("one agreement per necessity label")
    if not agreements:
        return Gate(samples, samples + 1, 0.0)

    def accuracy(t: int) -> float:
        return sum((a < t) == n for a, n in zip(agreements, necessary)) / len(agreements)

    best = max(range(samples + 2), key=lambda t: (accuracy(t), t))
    return Gate(samples, best, accuracy(best))


def confusion(stated: Sequence[bool | None], measured: Sequence[bool]) -> dict[str, object]:
    """The model's stated need (True: "I need to look this up") against measured necessity.

    Rows are measured necessity, columns the stated need; answers that were neither yes nor no are
    counted apart and left out of the mismatch rate (the share of stated needs that are wrong)."""
    if len(stated) != len(measured):
        raise ValueError("one stated need per necessity label")
    cells = {
        "necessary": {"stated_yes": 0, "stated_no": 0},
        "not_necessary": {"stated_yes": 0, "stated_no": 0},
    }
    unparsed = 0
    for said, needed in zip(stated, measured):
        if said is None:
            unparsed += 1
            continue
        cells["necessary" if needed else "not_necessary"]["stated_yes" if said else "stated_no"] += 1
    parsed = len(stated) - unparsed
    wrong = cells["necessary"]["stated_no"] + cells["not_necessary"]["stated_yes"]
    return {"confusion": cells, "unparsed": unparsed, "mismatch_rate": wrong / parsed if parsed else None}
