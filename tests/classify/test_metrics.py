"""Classification metrics on hand-built arrays, values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.classify import metrics as m

# 3 classes, 4 samples; argmax predictions 0, 1, 2, 0 (last one wrong)
Y3 = np.array([0, 1, 2, 2])
S3 = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.4, 0.4, 0.2]])
YB = np.array([0, 0, 1, 1])
SB = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])


def test_binary_auc_acc_balanced() -> None:
    # positive scores 0.35, 0.8 vs negative 0.1, 0.4: 3 of 4 pairs ordered -> 0.75
    assert m.auc(YB, SB, "binary") == pytest.approx(0.75)
    assert m.accuracy(YB, SB, "binary") == pytest.approx(0.75)  # 0.35 < 0.5 is wrong
    assert m.balanced_accuracy(YB, SB, "binary") == pytest.approx((1.0 + 0.5) / 2)


def test_rank_auc_matches_sklearn_formula_with_ties() -> None:
    y = np.array([0, 1, 0, 1, 1])
    s = np.array([0.2, 0.2, 0.5, 0.9, 0.1])
    # pairs (pos, neg): 0.2 vs 0.2 tie (0.5), 0.2<0.5, 0.9>0.2, 0.9>0.5, 0.1<0.2, 0.1<0.5
    expected = (0.5 + 0 + 1 + 1 + 0 + 0) / 6
    assert m._rank_auc(y, s) == pytest.approx(expected)
    assert m.binary_auc(y, s) == pytest.approx(expected)


def test_multiclass_ovr_auc_accuracy_confusion() -> None:
    # one-vs-rest: class 0 -> 1.0, class 1 -> 1.0, class 2 -> 3/4
    assert m.auc(Y3, S3, "multi-class") == pytest.approx((1 + 1 + 0.75) / 3)
    assert m.auc(Y3, S3, "ordinal") == pytest.approx((1 + 1 + 0.75) / 3)
    assert m.accuracy(Y3, S3, "multi-class") == pytest.approx(0.75)
    assert m.balanced_accuracy(Y3, S3, "multi-class") == pytest.approx((1 + 1 + 0.5) / 3)
    cm = m.confusion_matrix(Y3, m.predict_labels(S3, "multi-class"), 3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 1, 0], [1, 0, 1]])


def test_multilabel_auc_and_mean_label_accuracy() -> None:
    y = np.array([[1, 0], [0, 1], [1, 1]])
    s = np.array([[0.9, 0.2], [0.4, 0.6], [0.6, 0.3]])
    assert m.auc(y, s, "multi-label") == pytest.approx(1.0)
    assert m.accuracy(y, s, "multi-label") == pytest.approx((1 + 2 / 3) / 2)
    # label 1: recall of 0 is 1/1, recall of 1 is 1/2 -> 0.75; label 0: 1.0
    assert m.balanced_accuracy(y, s, "multi-label") == pytest.approx((1 + 0.75) / 2)


def test_ece_two_bins() -> None:
    # confidences 0.7, 0.5, 0.6, 0.4; correct 1, 1, 1, 0
    # bin (0, 0.5]: conf 0.45, acc 0.5; bin (0.5, 1]: conf 0.65, acc 1.0
    ece = m.expected_calibration_error(Y3, S3, "multi-class", bins=2)
    assert ece == pytest.approx(0.5 * 0.05 + 0.5 * 0.35)
    curve = m.calibration_curve(Y3, S3, "multi-class", bins=2)
    np.testing.assert_array_equal(curve["count"], [2, 2])


def test_bootstrap_ci_perfect_and_seeded() -> None:
    y = np.array([0, 1] * 10)
    s = np.stack([1 - y, y], 1).astype(float)
    assert m.bootstrap_ci(y, s, "binary", m.auc, n=50) == (1.0, 1.0)
    first = m.bootstrap_ci(Y3, S3, "multi-class", m.accuracy, n=200, seed=3)
    assert first == m.bootstrap_ci(Y3, S3, "multi-class", m.accuracy, n=200, seed=3)
    assert 0.0 <= first[0] <= 0.75 <= first[1] <= 1.0


def test_report_has_top_level_auc_acc_and_per_class() -> None:
    rep = m.classification_report(Y3, S3, "multi-class", ["a", "b", "c"], n_bootstrap=20)
    assert rep["auc"] == pytest.approx(11 / 12)
    assert rep["acc"] == pytest.approx(0.75)
    assert rep["confusion"] == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    assert [r["support"] for r in rep["per_class"]] == [1, 1, 2]
    assert [r["recall"] for r in rep["per_class"]] == [1.0, 1.0, 0.5]
    assert rep["per_class"][0]["precision"] == pytest.approx(0.5)


def test_single_class_auc_is_nan_and_bad_shapes_raise() -> None:
    assert np.isnan(m.binary_auc(np.array([1, 1]), np.array([0.2, 0.3])))
    from medseg.errors import InputError

    with pytest.raises(InputError, match="do not match"):
        m.auc(Y3, S3[:2], "multi-class")
