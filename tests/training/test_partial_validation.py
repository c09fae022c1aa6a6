"""Full-image validation of partially labelled cases scores only the classes they annotate."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from medseg.training.pipeline import FoldData, _score, scored_labels
from medseg.training.postprocessing import decide_postprocessing

PLAN = SimpleNamespace(label_values=(0, 1, 2), label_names={1: "disk", 2: "half"})


def _fold() -> FoldData:
    """case_full annotates both classes; case_part only class 1 (class 2 reads as 0)."""
    return FoldData(None, PLAN, Path("."), [], ["case_full", "case_part"],  # type: ignore[arg-type]
                    {"case_part": [True, True, False]})  # fmt: skip


def _arrays() -> tuple[list[np.ndarray], list[np.ndarray]]:
    gt_full = np.array([[1, 1, 2, 2, 0, 0]], np.uint8)
    pred_full = np.array([[1, 1, 2, 0, 0, 0]], np.uint8)  # class 2: Dice 2/3
    gt_part = np.array([[1, 1, 0, 0, 0, 0]], np.uint8)  # the class-2 voxels are unlabelled
    pred_part = np.array([[1, 1, 2, 2, 0, 2]], np.uint8)  # class 2 predicted there: not scored
    return [pred_full, pred_part], [gt_full, gt_part]


def test_scored_labels_per_case() -> None:
    assert scored_labels(_fold(), ["case_full", "case_part"]) == [[1, 2], [1]]


def test_score_leaves_out_unannotated_classes() -> None:
    preds, gts = _arrays()
    res = {"preds": preds, "gts": gts, "spacings": [(1.0, 1.0)] * 2}
    ids = ["case_full", "case_part"]
    summary, rows = _score(res, ids, PLAN, [], scored_labels(_fold(), ids))
    assert [(r["case"], r["label"]) for r in rows] == [
        ("case_full", 1), ("case_full", 2), ("case_part", 1)
    ]  # fmt: skip
    assert summary["per_class"][2]["n_cases"] == 1
    assert summary["per_class"][2]["dice"]["mean"] == pytest.approx(2 / 3)
    assert summary["per_class"][1]["n_cases"] == 2 and summary["per_class"][1]["dice"]["mean"] == 1
    # scoring every class (the former behaviour) would punish case_part's class 2 with Dice 0
    _, all_rows = _score({**res, "preds": list(preds)}, ids, PLAN, [], [[1, 2], [1, 2]])
    assert [r["dice"] for r in all_rows if r["label"] == 2] == [pytest.approx(2 / 3), 0.0]


def test_postprocessing_choice_ignores_unannotated_classes() -> None:
    preds, gts = _arrays()
    pp = decide_postprocessing(preds, gts, [1, 2], scored=[[1, 2], [1]])
    assert pp["dice_before"] == {1: 1.0, 2: pytest.approx(2 / 3)}
    assert pp["dice_after"] == {1: 1.0, 2: pytest.approx(2 / 3)}
    everything = decide_postprocessing(preds, gts, [1, 2])
    assert everything["dice_before"][2] == pytest.approx(1 / 3)  # (2/3 + 0) / 2
    # a class no case is scored on gets no entry and stays off
    none = decide_postprocessing(preds, gts, [1, 2], scored=[[1], [1]])
    assert none == {"largest_component": [], "dice_before": {1: 1.0}, "dice_after": {1: 1.0}}
