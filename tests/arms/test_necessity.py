"""Model-adaptive necessity on constructed cases: labels at the k/r boundary, the gate, the gap."""

from __future__ import annotations

import pytest

from tunewise.arms.necessity import confusion, fit_gate, is_necessary


def test_necessity_labels_at_the_k_r_boundary():
    assert is_necessary(8, 10, 9)  # 8 of 10 correct: below r=9, retrieval is necessary
    assert not is_necessary(9, 10, 9)  # 9 of 10: the model knows it
    assert not is_necessary(10, 10, 9)
    assert is_necessary(0, 10, 9)
    assert is_necessary(9, 10, 10) and not is_necessary(1, 10, 1)
    with pytest.raises(ValueError):
        is_necessary(11, 10, 9)
    with pytest.raises(ValueError):
        is_necessary(5, 10, 11)


def test_gate_threshold_is_fitted_on_train_and_prefers_retrieving():
    # Agreement (of 3 probes) 3 when the model knows, 1-2 when it needs retrieval: threshold 3.
    gate = fit_gate([3, 3, 1, 2, 3, 1], [False, False, True, True, False, True], samples=3)
    assert gate.threshold == 3 and gate.train_accuracy == 1.0
    assert gate.retrieve(2) and not gate.retrieve(3)
    # Ambiguous: thresholds 3 and 4 both get 3 of 4 right; the higher one retrieves more.
    gate = fit_gate([3, 3, 1, 1], [True, False, True, True], samples=3)
    assert gate.threshold == 4 and gate.train_accuracy == 0.75 and gate.retrieve(3)
    # Never necessary: a threshold of 1 or less never retrieves (agreement is at least 1).
    never = fit_gate([1, 2, 3], [False] * 3, samples=3)
    assert not any(never.retrieve(a) for a in (1, 2, 3)) and never.train_accuracy == 1.0
    assert fit_gate([], [], samples=3).threshold == 4  # nothing measured: always retrieve


def test_knowing_doing_gap_confusion_matrix():
    stated = [True, False, False, True, None, False]
    measured = [True, True, False, False, True, False]
    gap = confusion(stated, measured)
    assert gap["confusion"] == {
        "necessary": {"stated_yes": 1, "stated_no": 1},
        "not_necessary": {"stated_yes": 1, "stated_no": 2},
    }
    assert gap["unparsed"] == 1 and gap["mismatch_rate"] == pytest.approx(2 / 5)
    assert confusion([None], [True])["mismatch_rate"] is None
