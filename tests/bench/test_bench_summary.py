"""NoC, AUC, percentiles and summary blocks, checked against values worked out by hand."""

from __future__ import annotations

import pytest

from medseg.bench.summary import (
    challenge_auc,
    challenge_block,
    curve_auc,
    metric_block,
    noc,
    padded_curve,
    percentiles,
    worse_steps,
)
from medseg.errors import InputError


def test_noc_first_reaching_interaction_cap_and_never_reached() -> None:
    values = [0.5, 0.86, 0.91]
    assert noc(values, 0.85) == (2, True)
    assert noc(values, 0.90) == (3, True)
    assert noc(values, 0.95) == (20, False)
    assert noc(values, 0.90, cap=2) == (2, False)  # reached only after the cap
    assert noc([0.9], 0.9, cap=5) == (1, True)  # >= counts


def test_auc_by_hand() -> None:
    # trapezoids (0.5+0.7)/2 + (0.7+0.9)/2 = 1.4 over 2 unit steps
    assert curve_auc([0.5, 0.7, 0.9]) == pytest.approx(0.7)
    assert curve_auc([0.42]) == pytest.approx(0.42)
    # CVPR 2025: last 5 values 0.2..1.0 -> 0.3 + 0.5 + 0.7 + 0.9
    assert challenge_auc([0.1, 0.2, 0.4, 0.6, 0.8, 1.0]) == pytest.approx(2.4)


def test_padded_curve_and_percentiles() -> None:
    assert padded_curve([0.3, 0.6], 4) == [0.3, 0.6, 0.6, 0.6]
    assert padded_curve([0.1, 0.2, 0.3], 2) == [0.1, 0.2]
    p = percentiles([1.0, 2.0, 3.0, 4.0, 5.0])
    assert p == {"n": 5, "mean": 3.0, "p50": 3.0, "p95": pytest.approx(4.8)}
    assert percentiles([]) == {"n": 0, "mean": None, "p50": None, "p95": None}


def _t(*dices: float, nsd: float = 0.5) -> dict:
    return {"steps": [{"dice": d, "iou": d / (2 - d), "nsd": nsd} for d in dices]}


def test_metric_block_by_hand() -> None:
    targets = [_t(0.5, 0.86, 0.92), _t(0.8), _t(0.2, 0.3, 0.4)]  # the 2nd stopped early
    b = metric_block(targets, 3, (0.85, 0.90), "dice", cap=20)
    assert b["n_targets"] == 3
    assert b["mean_dice_per_step"] == pytest.approx([0.5, 1.96 / 3, 2.12 / 3])
    assert b["dice_first"] == pytest.approx(0.5)
    assert b["dice_final"] == pytest.approx(2.12 / 3)
    # AUCs: (0.5+0.86)/2+(0.86+0.92)/2 = 1.57 -> 0.785; 0.8; (0.25+0.35)/2 = 0.3
    assert b["dice_auc"] == pytest.approx((0.785 + 0.8 + 0.3) / 3)
    assert b["noc"]["85"] == {"mean": pytest.approx((2 + 20 + 20) / 3), "never_reached": 2}
    assert b["noc"]["90"] == {"mean": pytest.approx((3 + 20 + 20) / 3), "never_reached": 2}
    # corrections: 0.5->0.86, 0.86->0.92, 0.2->0.3, 0.3->0.4: none worse
    assert b["n_corrections"] == 4 and b["worse_steps"] == 0.0
    worse = metric_block([_t(0.5, 0.4, 0.4995, 0.6), _t(0.7)], 4, (0.85,))
    # 0.5->0.4 worse; 0.4->0.4995 better; 0.4995->0.6 better: 1 of 3 (0.7 made none)
    assert worse["n_corrections"] == 3 and worse["worse_steps"] == pytest.approx(1 / 3)
    assert worse_steps([[0.5, 0.4995, 0.49]]) == (1, 2)  # -0.0005 is noise, -0.0095 is worse
    assert metric_block([_t(0.9)], 1, (0.85,))["worse_steps"] is None
    iou = metric_block([_t(0.9)], 1, (0.85,), "iou")  # IoU 0.818 < 0.85
    assert iou["noc"]["85"] == {"mean": 20.0, "never_reached": 1}
    assert metric_block([], 3, (0.85,)) == {"n_targets": 0}


def test_challenge_blocks_average_targets_per_case_then_cases() -> None:
    cases = [
        {"targets": [_t(0.6), _t(1.0)], "runtime_s": 2.0},
        {"targets": [_t(0.2, nsd=0.0)], "runtime_s": 4.0},
        {"targets": [], "runtime_s": 9.0},  # nothing evaluated: not a case
    ]
    b = challenge_block(cases, "cvpr24", 1)
    assert b == {"n_cases": 2, "runtime_s": 3.0, "dsc": pytest.approx(0.5), "nsd": 0.25}
    c = challenge_block([{"targets": [_t(0.1, 0.2, 0.4, 0.6, 0.8, 1.0)], "runtime_s": 1.0}],
                        "cvpr25", 6)  # fmt: skip
    assert c["dsc_auc"] == pytest.approx(2.4) and c["dsc_final"] == 1.0
    assert c["nsd_auc"] == pytest.approx(2.0) and c["nsd_final"] == 0.5


def test_bad_input() -> None:
    with pytest.raises(InputError):
        noc([0.5], 0.9, cap=0)
    with pytest.raises(InputError):
        curve_auc([])
    with pytest.raises(InputError):
        challenge_auc([0.5])
    with pytest.raises(InputError):
        padded_curve([], 3)
    with pytest.raises(InputError, match="challenge"):
        challenge_block([{"targets": [_t(0.5)], "runtime_s": 1.0}], "cvpr99", 1)
