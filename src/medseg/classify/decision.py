"""Decision rules that turn ordinal class probabilities into one grade.

For ordered grades ``0 .. K-1`` (RetinaMNIST: diabetic-retinopathy severity) the probabilities
``(N, K)`` can be read three ways (AUC does not change, only ACC):

- ``argmax``: the most probable grade (MedMNIST's ``getACC``);
- ``round``: the expected grade ``E = sum_k k * p_k`` rounded half up, clipped to ``0..K-1``;
- ``thresholds``: ``E`` cut at ``K - 1`` increasing thresholds, fitted to maximise the
  accuracy on labelled data (:func:`fit_thresholds`, the validation split).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medseg.errors import InputError

__all__ = ["RULES", "expected_grade", "decide", "fit_thresholds", "cv_accuracy"]

RULES = ("argmax", "round", "thresholds")


def _check_proba(proba: np.ndarray) -> np.ndarray:
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] < 2:
        raise InputError(f"probabilities must be (N, K) with K >= 2, got shape {proba.shape}")
    return proba


def expected_grade(proba: np.ndarray) -> np.ndarray:
    """``(N,)`` expected grade ``sum_k k * p_k`` of probabilities ``(N, K)``."""
    proba = _check_proba(proba)
    return proba @ np.arange(proba.shape[1], dtype=np.float64)


def decide(
    proba: np.ndarray, rule: str = "argmax", thresholds: Sequence[float] | None = None
) -> np.ndarray:
    """Grades ``(N,)`` (int64) of probabilities ``(N, K)`` by ``rule`` (see :data:`RULES`).

    ``thresholds`` (rule ``thresholds`` only): ``K - 1`` non-decreasing cut points on the
    expected grade; ``E < t[0]`` is grade 0, ``t[j-1] <= E < t[j]`` grade ``j``.
    """
    proba = _check_proba(proba)
    k = proba.shape[1]
    if rule == "argmax":
        return proba.argmax(1).astype(np.int64)
    if rule == "round":
        return np.clip(np.floor(expected_grade(proba) + 0.5), 0, k - 1).astype(np.int64)
    if rule != "thresholds":
        raise InputError(f"unknown decision rule {rule!r}; choose from {RULES}")
    if thresholds is None or len(thresholds) != k - 1:
        raise InputError(f"rule 'thresholds' needs {k - 1} thresholds for {k} classes")
    t = np.asarray(thresholds, dtype=np.float64)
    if np.any(np.diff(t) < 0):
        raise InputError(f"thresholds must be non-decreasing, got {t.tolist()}")
    return np.searchsorted(t, expected_grade(proba), side="right").astype(np.int64)


def fit_thresholds(labels: np.ndarray, proba: np.ndarray, passes: int = 3) -> list[float]:
    """``K - 1`` thresholds on the expected grade that maximise the accuracy on ``labels``.

    Coordinate ascent from the rounding cuts ``0.5, 1.5, ...``: each threshold in turn moves
    to the candidate (midpoints between sorted distinct expected grades, and its current
    value) between its neighbours that gives the highest accuracy; on ties the candidate
    closest to the current value wins, so the result is deterministic. ``passes`` rounds.
    """
    proba = _check_proba(proba)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if len(labels) != len(proba):
        raise InputError(f"{len(labels)} labels for {len(proba)} probability rows")
    k = proba.shape[1]
    e = expected_grade(proba)
    values = np.unique(e)
    mids = (values[:-1] + values[1:]) / 2 if len(values) > 1 else values
    t = np.arange(k - 1, dtype=np.float64) + 0.5
    for _ in range(passes):
        for j in range(k - 1):
            lo = t[j - 1] if j > 0 else -np.inf
            hi = t[j + 1] if j < k - 2 else np.inf
            cands = np.concatenate([[t[j]], mids[(mids >= lo) & (mids <= hi)]])
            best, best_acc = t[j], -1.0
            for c in cands:
                trial = t.copy()
                trial[j] = c
                acc = float(np.mean(np.searchsorted(trial, e, side="right") == labels))
                closer = abs(c - t[j]) < abs(best - t[j])
                if acc > best_acc or (acc == best_acc and closer):
                    best, best_acc = c, acc
            t[j] = best
    return [float(v) for v in t]


def cv_accuracy(labels: np.ndarray, proba: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """Out-of-fold accuracy of the ``thresholds`` rule: thresholds fitted on ``folds - 1``
    parts, scored on the held-out part (an honest estimate on the split they are fitted to)."""
    proba = _check_proba(proba)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    correct = 0
    for part in np.array_split(order, folds):
        rest = np.setdiff1d(order, part)
        t = fit_thresholds(labels[rest], proba[rest])
        correct += int(np.sum(decide(proba[part], "thresholds", t) == labels[part]))
    return correct / len(labels)
