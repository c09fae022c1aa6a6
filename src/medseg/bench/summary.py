"""Benchmark numbers: NoC, AUC over interactions, percentiles, and per-model summaries.

Definitions (also in ``docs/bench.md``):

- Curves: a target's Dice (or NSD) after interaction 1..N. A target that stops early (the
  prediction is perfect, or every error pixel was clicked) keeps its last value for the
  remaining interactions, so every curve has N points.
- ``dice_auc``: area under the Dice curve by the trapezoid rule with unit steps, divided by
  ``N - 1`` so it lies in ``[0, 1]`` (the mean Dice over the interval); for ``N = 1`` it is
  the single Dice.
- ``NoC@T`` (number of clicks): the first interaction (1-based) after which the metric is
  ``>= T``; a target that never gets there counts as ``cap`` (20, as in RITM) and is counted
  in ``never_reached``.
- ``worse_steps``: among the corrections actually made (interactions 2..N of each target,
  before it stopped), the fraction after which Dice dropped by more than ``WORSE_TOL``
  (0.001) from the step before; ``n_corrections`` counts them.
- CVPR 2025 ``DSC_AUC`` / ``NSD_AUC``: trapezoid area, unit steps, unnormalised, over the last
  5 interactions (the click steps), as the challenge's evaluation code computes it (range
  ``[0, 4]``); ``DSC_Final``/``NSD_Final``: values after the last interaction. Case values
  are the mean over the case's targets, and the summary is the mean over cases.
- CVPR 2024: case DSC/NSD = mean over the case's targets of the box result; NSD is 0 when
  DSC <= 0.2; runtime = ``set_image`` plus every ``predict`` of the case, in seconds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from medseg.errors import InputError

__all__ = [
    "WORSE_TOL",
    "worse_steps",
    "noc",
    "curve_auc",
    "challenge_auc",
    "padded_curve",
    "percentiles",
    "metric_block",
    "challenge_block",
]


# A correction "makes it worse" when Dice drops by more than this (ignores float noise).
WORSE_TOL = 1e-3


def worse_steps(curves: Sequence[Sequence[float]]) -> tuple[int, int]:
    """``(worse, corrections)``: corrections (steps after the first, unpadded) after which the
    value dropped by more than :data:`WORSE_TOL`, and all corrections."""
    worse = total = 0
    for curve in curves:
        v = np.asarray(curve, dtype=np.float64)
        if v.size > 1:
            d = np.diff(v)
            worse += int(np.count_nonzero(d < -WORSE_TOL))
            total += int(d.size)
    return worse, total


def noc(values: Sequence[float], threshold: float, cap: int = 20) -> tuple[int, bool]:
    """Interactions needed to reach ``threshold``: ``(count, reached)``.

    ``values[i]`` is the metric after interaction ``i + 1``. Returns the 1-based index of the
    first value ``>= threshold`` (never more than ``cap``), or ``(cap, False)`` when no value
    reaches it within the first ``cap`` interactions.
    """
    if cap < 1:
        raise InputError(f"NoC cap must be >= 1, got {cap}")
    for i, v in enumerate(values[:cap]):
        if v >= threshold:
            return i + 1, True
    return cap, False


def curve_auc(values: Sequence[float]) -> float:
    """Trapezoid area under ``values`` at unit steps, divided by ``len - 1`` (in ``[0, 1]``
    for values in ``[0, 1]``); the value itself for a single point."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise InputError("AUC of an empty curve")
    if v.size == 1:
        return float(v[0])
    return float(np.trapezoid(v, dx=1.0) / (v.size - 1))


def challenge_auc(values: Sequence[float], n_last: int = 5) -> float:
    """CVPR 2025 AUC: unnormalised trapezoid area over the last ``n_last`` values, unit steps."""
    v = np.asarray(values, dtype=np.float64)[-n_last:]
    if v.size < 2:
        raise InputError(f"challenge AUC needs at least 2 values, got {v.size}")
    return float(np.trapezoid(v, dx=1.0))


def padded_curve(values: Sequence[float], n: int) -> list[float]:
    """``values`` extended to length ``n`` by repeating the last one (truncated if longer)."""
    if not values:
        raise InputError("cannot pad an empty curve")
    v = list(values)[:n]
    return v + [v[-1]] * (n - len(v))


def percentiles(values: Sequence[float]) -> dict[str, float | int | None]:
    """``{"n", "mean", "p50", "p95"}`` (linear interpolation); None values when empty."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"n": 0, "mean": None, "p50": None, "p95": None}
    p50, p95 = np.percentile(v, [50, 95])
    return {"n": int(v.size), "mean": float(v.mean()), "p50": float(p50), "p95": float(p95)}


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def metric_block(
    targets: Sequence[dict[str, Any]],
    n_steps: int,
    thresholds: Sequence[float],
    noc_metric: str = "dice",
    cap: int = 20,
) -> dict[str, Any]:
    """Summary of targets (dicts with ``steps``: list of ``{"dice", "iou", "nsd"}``).

    Returns mean Dice/NSD per interaction, first/final means, mean ``dice_auc`` and NoC per
    threshold (``{"mean", "never_reached"}``, keyed by the threshold in percent).
    """
    if not targets:
        return {"n_targets": 0}
    dice = np.array([padded_curve([s["dice"] for s in t["steps"]], n_steps) for t in targets])
    nsd = np.array([padded_curve([s["nsd"] for s in t["steps"]], n_steps) for t in targets])
    worse, n_corr = worse_steps([[s["dice"] for s in t["steps"][:n_steps]] for t in targets])
    block: dict[str, Any] = {
        "n_targets": len(targets),
        "mean_dice_per_step": dice.mean(axis=0).tolist(),
        "mean_nsd_per_step": nsd.mean(axis=0).tolist(),
        "dice_first": float(dice[:, 0].mean()),
        "dice_final": float(dice[:, -1].mean()),
        "nsd_final": float(nsd[:, -1].mean()),
        "dice_auc": float(np.mean([curve_auc(row) for row in dice])),
        "n_corrections": n_corr,
        "worse_steps": worse / n_corr if n_corr else None,
        "noc_metric": noc_metric,
        "noc": {},
    }
    for thr in thresholds:
        results = [
            noc(padded_curve([s[noc_metric] for s in t["steps"]], n_steps), thr, cap)
            for t in targets
        ]
        block["noc"][f"{round(thr * 100):d}"] = {
            "mean": float(np.mean([r[0] for r in results])),
            "never_reached": sum(1 for r in results if not r[1]),
        }
    return block


def challenge_block(cases: Sequence[dict[str, Any]], challenge: str, n_steps: int) -> dict:
    """CVPR 2024 / 2025 case-level metrics (see the module docstring).

    ``cases``: dicts with ``targets`` (ok targets with ``steps``) and ``runtime_s``.
    """
    per_case: dict[str, list[float]] = defaultdict(list)
    for case in cases:
        targets = case["targets"]
        if not targets:
            continue
        dice = [padded_curve([s["dice"] for s in t["steps"]], n_steps) for t in targets]
        nsd = [padded_curve([s["nsd"] for s in t["steps"]], n_steps) for t in targets]
        per_case["runtime_s"].append(case["runtime_s"])
        if challenge == "cvpr24":
            per_case["dsc"].append(float(np.mean([d[0] for d in dice])))
            per_case["nsd"].append(float(np.mean([n[0] for n in nsd])))
        elif challenge == "cvpr25":
            per_case["dsc_auc"].append(float(np.mean([challenge_auc(d) for d in dice])))
            per_case["nsd_auc"].append(float(np.mean([challenge_auc(n) for n in nsd])))
            per_case["dsc_final"].append(float(np.mean([d[-1] for d in dice])))
            per_case["nsd_final"].append(float(np.mean([n[-1] for n in nsd])))
        else:
            raise InputError(f"unknown challenge {challenge!r}")
    out: dict[str, Any] = {"n_cases": len(per_case["runtime_s"])}
    out.update({k: _mean(v) for k, v in per_case.items()})
    return out
