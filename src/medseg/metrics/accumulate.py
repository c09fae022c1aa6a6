"""Collect per-case rows and aggregate them per class (MONAI-style ``add`` / ``aggregate``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from medseg.errors import InputError

__all__ = ["MetricAccumulator", "summarize"]

_DISTANCES = ("hd95", "assd")


def summarize(values: Sequence[float]) -> dict[str, float | int]:
    """Mean, median, std (population, ``ddof=0``) and count of ``values`` ignoring NaN.

    Returns NaN statistics with ``n = 0`` when no value is finite. ``n_nan`` counts the NaNs
    left out.
    """
    arr = np.asarray(values, dtype=float)
    ok = arr[~np.isnan(arr)]
    if ok.size == 0:
        nan = float("nan")
        return {"mean": nan, "median": nan, "std": nan, "n": 0, "n_nan": int(arr.size)}
    return {
        "mean": float(ok.mean()),
        "median": float(np.median(ok)),
        "std": float(ok.std()),
        "n": int(ok.size),
        "n_nan": int(arr.size - ok.size),
    }


class MetricAccumulator:
    """Accumulates rows from :func:`medseg.metrics.evaluate_case` and aggregates per class.

    Infinite HD95/ASSD values (exactly one mask empty) are replaced by the row's ``cap_mm``
    (the grid diagonal) so that means stay finite; ``n_capped`` reports how many were. NaN
    values are ignored and counted in ``n_nan``.

    Example::

        acc = MetricAccumulator()
        for pred, gt in cases:
            acc.add(evaluate_case(pred, gt))
        summary = acc.aggregate()
    """

    def __init__(self, metrics: Sequence[str] = ("dice", "iou", "hd95", "assd", "nsd")) -> None:
        self.metrics = tuple(metrics)
        self.reset()

    def reset(self) -> None:
        """Forget every row added so far."""
        self._values: dict[int, dict[str, list[float]]] = {}
        self._capped: dict[int, dict[str, int]] = {}
        self._flags: dict[int, dict[str, int]] = {}
        self._names: dict[int, str] = {}
        self._cases: set[str] = set()

    def __len__(self) -> int:
        """Number of (case, label) rows added."""
        return sum(len(v[self.metrics[0]]) for v in self._values.values()) if self.metrics else 0

    def add(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add rows with ``label``, the metric keys and optionally ``case``, ``name``,
        ``cap_mm``, ``pred_empty``, ``gt_empty``.

        Raises:
            InputError: a row lacks ``label`` or one of the metrics, or an infinite distance
                comes without a finite ``cap_mm``.
        """
        for row in rows:
            missing = [k for k in ("label", *self.metrics) if k not in row]
            if missing:
                raise InputError(f"metric row is missing {missing}: {dict(row)}")
            lab = int(row["label"])
            # Validate the whole row before storing anything, so a bad row changes nothing.
            raw = {m: float(row[m]) for m in self.metrics}
            capped = {m: math.isinf(v) and m in _DISTANCES for m, v in raw.items()}
            final = {m: self._cap(row, m) if capped[m] else v for m, v in raw.items()}
            values = self._values.setdefault(lab, {m: [] for m in self.metrics})
            counts = self._capped.setdefault(lab, dict.fromkeys(self.metrics, 0))
            flags = self._flags.setdefault(lab, {"pred_empty": 0, "gt_empty": 0, "both_empty": 0})
            for m in self.metrics:
                values[m].append(final[m])
                counts[m] += int(capped[m])
            if row.get("name"):
                self._names[lab] = str(row["name"])
            self._cases.add(str(row.get("case", "")))
            p_empty, g_empty = bool(row.get("pred_empty")), bool(row.get("gt_empty"))
            flags["pred_empty"] += p_empty and not g_empty
            flags["gt_empty"] += g_empty and not p_empty
            flags["both_empty"] += p_empty and g_empty

    @staticmethod
    def _cap(row: Mapping[str, Any], metric: str) -> float:
        cap = float(row.get("cap_mm", math.nan))
        if not math.isfinite(cap):
            raise InputError(
                f"{metric} is infinite for label {row['label']} of case {row.get('case', '?')!r} "
                "and the row has no finite cap_mm to replace it"
            )
        return cap

    def aggregate(self) -> dict[str, Any]:
        """Statistics per class and overall.

        Returns:
            ``{"per_class": {label: {"name", "n_cases", "pred_empty", "gt_empty",
            "both_empty", <metric>: {mean, median, std, n, n_nan, n_capped}}},
            "overall": {<metric>: {mean, median, std, n, n_nan, n_capped, class_mean}}}``.
            ``overall`` pools every (case, label) row; ``class_mean`` is the mean of the
            per-class means (every class weighted equally). The top-level ``n_cases`` counts
            distinct ``case`` values of the rows.
        """
        per_class: dict[int, dict[str, Any]] = {}
        for lab in sorted(self._values):
            entry: dict[str, Any] = {
                "name": self._names.get(lab, ""),
                "n_cases": len(self._values[lab][self.metrics[0]]) if self.metrics else 0,
                **self._flags[lab],
            }
            for m in self.metrics:
                entry[m] = {**summarize(self._values[lab][m]), "n_capped": self._capped[lab][m]}
            per_class[lab] = entry
        overall: dict[str, Any] = {}
        for m in self.metrics:
            pooled = [v for lab in self._values for v in self._values[lab][m]]
            class_means = [per_class[lab][m]["mean"] for lab in per_class]
            overall[m] = {
                **summarize(pooled),
                "n_capped": sum(self._capped[lab][m] for lab in self._capped),
                "class_mean": summarize(class_means)["mean"],
            }
        return {"n_cases": len(self._cases), "per_class": per_class, "overall": overall}
