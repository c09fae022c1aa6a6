"""Classification metrics as MedMNIST computes them, plus calibration and bootstrap intervals.

``scores`` are probabilities ``(N, K)``: softmax over K classes (binary: K = 2, the positive
class last), or per-label sigmoids for multi-label. ``labels`` are ``(N,)`` class indices or
``(N, K)`` 0/1 for multi-label.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from medseg.errors import InputError

__all__ = [
    "binary_auc",
    "auc",
    "accuracy",
    "predict_labels",
    "balanced_accuracy",
    "confusion_matrix",
    "expected_calibration_error",
    "calibration_curve",
    "bootstrap_ci",
    "per_class",
    "classification_report",
]

log = logging.getLogger(__name__)


def _rank_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties (same value as sklearn's roc_auc_score)."""
    from scipy.stats import rankdata

    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    ranks = rankdata(s)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC of 0/1 labels ``(N,)`` vs scores ``(N,)``; NaN when one class is absent."""
    y = np.asarray(y).astype(int).ravel()
    s = np.asarray(s, dtype=np.float64).ravel()
    if len(np.unique(y)) < 2:
        return float("nan")
    try:
        from sklearn.metrics import roc_auc_score
    except ImportError:  # scikit-learn is optional: the rank formula gives the same number
        return _rank_auc(y, s)
    return float(roc_auc_score(y, s))


def _check(labels: np.ndarray, scores: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray]:
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or len(scores) != len(labels):
        raise InputError(f"scores {scores.shape} do not match labels {labels.shape}")
    if task == "multi-label" and labels.shape != scores.shape:
        raise InputError(f"multi-label labels {labels.shape} != scores {scores.shape}")
    return labels, scores


def auc(labels: np.ndarray, scores: np.ndarray, task: str) -> float:
    """MedMNIST ``getAUC``: binary -> AUC of the last column; multi-class/ordinal -> mean of the
    one-vs-rest AUCs over classes; multi-label -> mean AUC over labels (NaN ones skipped)."""
    labels, scores = _check(labels, scores, task)
    if task == "binary":
        return binary_auc(labels, scores[:, -1])
    if task == "multi-label":
        values = [binary_auc(labels[:, k], scores[:, k]) for k in range(scores.shape[1])]
    else:
        values = [binary_auc(labels == k, scores[:, k]) for k in range(scores.shape[1])]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def predict_labels(scores: np.ndarray, task: str, threshold: float = 0.5) -> np.ndarray:
    """Hard predictions: binary ``scores[:, -1] > threshold``, multi-label per column, else
    argmax; ``(N,)`` or ``(N, K)`` for multi-label."""
    scores = np.asarray(scores)
    if task == "binary":
        return (scores[:, -1] > threshold).astype(np.int64)
    if task == "multi-label":
        return (scores > threshold).astype(np.int64)
    return scores.argmax(1).astype(np.int64)


def accuracy(labels: np.ndarray, scores: np.ndarray, task: str, threshold: float = 0.5) -> float:
    """MedMNIST ``getACC``: multi-label -> mean over labels of the per-label accuracy."""
    labels, scores = _check(labels, scores, task)
    pred = predict_labels(scores, task, threshold)
    if task == "multi-label":
        return float(np.mean((pred == labels).mean(0)))
    return float(np.mean(pred == labels))


def confusion_matrix(labels: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``(K, K)`` counts: row = true class, column = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels, int), np.asarray(pred, int)), 1)
    return cm


def balanced_accuracy(labels: np.ndarray, scores: np.ndarray, task: str) -> float:
    """Mean recall over the classes present (multi-label: mean of per-label balanced accuracy)."""
    labels, scores = _check(labels, scores, task)
    pred = predict_labels(scores, task)
    if task == "multi-label":
        return float(
            np.mean([_mean_recall(labels[:, k], pred[:, k]) for k in range(pred.shape[1])])
        )
    return _mean_recall(labels, pred)


def _mean_recall(labels: np.ndarray, pred: np.ndarray) -> float:
    cm = confusion_matrix(labels, pred, int(max(labels.max(), pred.max())) + 1)
    support = cm.sum(1)
    return float((np.diag(cm)[support > 0] / support[support > 0]).mean())


def calibration_curve(
    labels: np.ndarray, scores: np.ndarray, task: str, bins: int = 15
) -> dict[str, np.ndarray]:
    """Confidence (probability of the predicted class; multi-label: of each label's predicted
    value) against accuracy in ``bins`` equal-width bins.

    Returns ``confidence``, ``accuracy`` (NaN in empty bins), ``count`` and ``edges``.
    """
    labels, scores = _check(labels, scores, task)
    if task == "multi-label":
        conf = np.where(scores > 0.5, scores, 1 - scores).ravel()
        correct = ((scores > 0.5).astype(int) == labels).ravel()
    else:
        pred = predict_labels(scores, task)
        conf = scores[np.arange(len(pred)), pred]
        correct = pred == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, conf, bins) / count
        mean_acc = np.bincount(which, correct.astype(float), bins) / count
    return {"confidence": mean_conf, "accuracy": mean_acc, "count": count, "edges": edges}


def expected_calibration_error(
    labels: np.ndarray, scores: np.ndarray, task: str, bins: int = 15
) -> float:
    """ECE: sum over bins of ``count / N * |accuracy - confidence|`` (Guo et al. 2017)."""
    curve = calibration_curve(labels, scores, task, bins)
    count = curve["count"]
    used = count > 0
    gap = np.abs(curve["accuracy"][used] - curve["confidence"][used])
    return float((count[used] / count.sum() * gap).sum())


def bootstrap_ci(
    labels: np.ndarray,
    scores: np.ndarray,
    task: str,
    metric: Any,
    n: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """95 % percentile interval of ``metric(labels, scores, task)`` over ``n`` resamples.

    Resamples where the metric is undefined (NaN, e.g. one class drawn only) are skipped.
    """
    labels, scores = _check(labels, scores, task)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        idx = rng.integers(0, len(labels), len(labels))
        v = metric(labels[idx], scores[idx], task)
        if not np.isnan(v):
            values.append(v)
    if not values:
        return float("nan"), float("nan")
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def per_class(
    labels: np.ndarray, scores: np.ndarray, task: str, classes: list[str]
) -> list[dict[str, Any]]:
    """One row per class (label): support, precision, recall (sensitivity), one-vs-rest AUC."""
    labels, scores = _check(labels, scores, task)
    pred = predict_labels(scores, task)
    rows = []
    for k, name in enumerate(classes):
        if task == "multi-label":
            y, p, s = labels[:, k] == 1, pred[:, k] == 1, scores[:, k]
        else:
            y, p = labels == k, pred == k
            s = scores[:, -1] if task == "binary" and k == 1 else scores[:, k]
        tp = int((y & p).sum())
        rows.append(
            {
                "class": name,
                "support": int(y.sum()),
                "precision": tp / int(p.sum()) if p.any() else float("nan"),
                "recall": tp / int(y.sum()) if y.any() else float("nan"),
                "auc": binary_auc(y, s),
            }
        )
    return rows


def classification_report(
    labels: np.ndarray,
    scores: np.ndarray,
    task: str,
    classes: list[str],
    n_bootstrap: int = 1000,
) -> dict[str, Any]:
    """All metrics in one JSON-ready dict: ``auc``, ``acc`` (top level), ``balanced_acc``,
    ``ece``, ``auc_ci95``/``acc_ci95``, ``per_class``, ``confusion`` (not for multi-label)."""
    labels, scores = _check(labels, scores, task)
    report: dict[str, Any] = {
        "auc": auc(labels, scores, task),
        "acc": accuracy(labels, scores, task),
        "balanced_acc": balanced_accuracy(labels, scores, task),
        "ece": expected_calibration_error(labels, scores, task),
        "n": len(labels),
        "task": task,
    }
    if n_bootstrap:
        report["auc_ci95"] = list(bootstrap_ci(labels, scores, task, auc, n_bootstrap))
        report["acc_ci95"] = list(bootstrap_ci(labels, scores, task, accuracy, n_bootstrap))
    report["per_class"] = per_class(labels, scores, task, classes)
    if task != "multi-label":
        pred = predict_labels(scores, task)
        report["confusion"] = confusion_matrix(labels, pred, len(classes)).tolist()
    return report
