"""``medseg.classify.decision``: argmax, rounded expected grade, fitted thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.classify.decision import cv_accuracy, decide, expected_grade, fit_thresholds
from medseg.errors import InputError

# expected grades 0.5, 1.5, 0.75, 1.75 (exact in binary)
P = np.array(
    [
        [0.5, 0.5, 0.0],  # argmax 0 (first of a tie), E 0.5 -> round 1
        [0.0, 0.5, 0.5],  # argmax 1, E 1.5 -> round 2
        [0.5, 0.25, 0.25],  # argmax 0, E 0.75 -> round 1
        [0.0, 0.25, 0.75],  # argmax 2, E 1.75 -> round 2
    ]
)


def test_expected_grade_exact() -> None:
    np.testing.assert_array_equal(expected_grade(P), [0.5, 1.5, 0.75, 1.75])


def test_argmax_and_round() -> None:
    np.testing.assert_array_equal(decide(P, "argmax"), [0, 1, 0, 2])
    np.testing.assert_array_equal(decide(P, "round"), [1, 2, 1, 2])
    assert decide(P, "round").dtype == np.int64


def test_thresholds_rule() -> None:
    np.testing.assert_array_equal(decide(P, "thresholds", [0.6, 1.6]), [0, 1, 1, 2])
    np.testing.assert_array_equal(decide(P, "thresholds", [0.5, 1.5]), [1, 2, 1, 2])
    with pytest.raises(InputError, match="needs 2 thresholds"):
        decide(P, "thresholds", [1.0])
    with pytest.raises(InputError, match="non-decreasing"):
        decide(P, "thresholds", [1.6, 0.6])
    with pytest.raises(InputError, match="unknown decision rule 'mode'"):
        decide(P, "mode")
    with pytest.raises(InputError, match=r"\(N, K\) with K >= 2"):
        decide(np.ones(3), "argmax")


def test_fit_thresholds_finds_the_perfect_cuts() -> None:
    labels = np.array([0, 1, 1, 2])  # E = 0.5, 1.5, 0.75, 1.75: sorted 0.5 | 0.75, 1.5 | 1.75
    t = fit_thresholds(labels, P)
    # start 0.5, 1.5: the midpoint 0.625 separates grade 0, then 1.625 separates grade 2
    assert t == [0.625, 1.625]
    np.testing.assert_array_equal(decide(P, "thresholds", t), labels)
    assert float(np.mean(decide(P, "argmax") == labels)) == 0.75


def test_fit_thresholds_keeps_rounding_cuts_when_they_are_best() -> None:
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.75, 0.25], [0.25, 0.75]])
    assert fit_thresholds(np.array([0, 1, 0, 1]), probs) == [0.5]
    with pytest.raises(InputError, match="3 labels for 4"):
        fit_thresholds(np.array([0, 1, 0]), probs)


def test_cv_accuracy_out_of_fold() -> None:
    # two folds of two: each fold's cut comes from the other fold's rows
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.75, 0.25], [0.25, 0.75]])
    assert cv_accuracy(np.array([0, 1, 0, 1]), probs, folds=2) == 1.0
