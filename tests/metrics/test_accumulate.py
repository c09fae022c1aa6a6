from __future__ import annotations

import math

import numpy as np
import pytest

from medseg.errors import InputError
from medseg.metrics import MetricAccumulator, summarize


def _row(case: str, label: int, dice: float, hd: float, **extra: object) -> dict:
    return {
        "case": case,
        "label": label,
        "dice": dice,
        "iou": dice,
        "hd95": hd,
        "assd": hd,
        "nsd": dice,
        "cap_mm": 100.0,
        **extra,
    }


def test_summarize_ignores_nan() -> None:
    s = summarize([1.0, 3.0, float("nan"), 2.0, 6.0])
    assert s == {
        "mean": 3.0,
        "median": 2.5,
        "std": pytest.approx(math.sqrt(3.5)),
        "n": 4,
        "n_nan": 1,
    }
    empty = summarize([float("nan")])
    assert empty["n"] == 0 and empty["n_nan"] == 1 and math.isnan(empty["mean"])


def test_per_class_and_overall() -> None:
    acc = MetricAccumulator()
    acc.add([_row("a", 1, 1.0, 0.0, name="liver"), _row("a", 2, 0.5, 2.0)])
    acc.add([_row("b", 1, 0.5, 4.0), _row("b", 2, 0.0, math.inf, pred_empty=True)])
    assert len(acc) == 4
    out = acc.aggregate()
    assert out["n_cases"] == 2
    liver = out["per_class"][1]
    assert liver["name"] == "liver" and liver["n_cases"] == 2
    assert liver["dice"] == {
        "mean": 0.75,
        "median": 0.75,
        "std": 0.25,
        "n": 2,
        "n_nan": 0,
        "n_capped": 0,
    }
    two = out["per_class"][2]
    # the infinite HD95 is replaced by cap_mm = 100 and counted
    assert two["hd95"]["mean"] == pytest.approx(51.0)
    assert two["hd95"]["n_capped"] == 1 and two["assd"]["n_capped"] == 1
    assert two["dice"]["n_capped"] == 0
    assert (two["pred_empty"], two["gt_empty"], two["both_empty"]) == (1, 0, 0)
    overall = out["overall"]
    assert overall["dice"]["mean"] == pytest.approx(0.5)  # pooled: (1 + .5 + .5 + 0) / 4
    assert overall["dice"]["class_mean"] == pytest.approx((0.75 + 0.25) / 2)
    assert overall["hd95"]["mean"] == pytest.approx((0 + 2 + 4 + 100) / 4)
    assert overall["hd95"]["n_capped"] == 1


def test_nan_values_are_counted_not_averaged() -> None:
    acc = MetricAccumulator(metrics=("dice",))
    acc.add([{"label": 3, "dice": float("nan")}, {"label": 3, "dice": 0.2}])
    stats = acc.aggregate()["per_class"][3]["dice"]
    assert stats["mean"] == pytest.approx(0.2) and stats["n"] == 1 and stats["n_nan"] == 1


def test_both_empty_flag_and_reset() -> None:
    acc = MetricAccumulator()
    acc.add([_row("a", 4, 1.0, 0.0, pred_empty=True, gt_empty=True)])
    assert acc.aggregate()["per_class"][4]["both_empty"] == 1
    acc.reset()
    assert len(acc) == 0 and acc.aggregate()["per_class"] == {}


def test_bad_rows() -> None:
    acc = MetricAccumulator()
    with pytest.raises(InputError, match="missing"):
        acc.add([{"label": 1, "dice": 1.0}])
    row = _row("a", 1, 0.0, math.inf)
    row["cap_mm"] = np.inf
    with pytest.raises(InputError, match="cap_mm"):
        acc.add([row])


def test_bad_row_leaves_state_unchanged() -> None:
    acc = MetricAccumulator()
    acc.add([_row("a", 1, 0.5, 1.0)])
    row = _row("b", 1, 0.0, math.inf)
    del row["cap_mm"]
    with pytest.raises(InputError, match="cap_mm"):
        acc.add([row])
    assert len(acc) == 1
    assert acc.aggregate()["per_class"][1]["dice"]["mean"] == 0.5
