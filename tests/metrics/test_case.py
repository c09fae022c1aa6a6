from __future__ import annotations

import math

import numpy as np
import pytest

from medseg.errors import InputError
from medseg.io.image import LabelMap
from medseg.metrics import distance_cap_mm, evaluate_case


def _maps() -> tuple[np.ndarray, np.ndarray]:
    gt = np.zeros((10, 12), np.uint8)
    gt[2:6, 2:6] = 1  # 4x4 square
    gt[7:9, 8:11] = 2  # 2x3 block, missing from the prediction
    pred = np.zeros_like(gt)
    pred[3:7, 2:6] = 1  # square shifted 1 row
    pred[0:2, 9:11] = 3  # a label only the prediction has
    return pred, gt


def test_rows_per_label_with_exact_values() -> None:
    pred, gt = _maps()
    rows = evaluate_case(pred, gt, spacing=(2.0, 1.0), nsd_tolerance=2.0, case="c1")
    assert [r["label"] for r in rows] == [1, 2, 3]  # default: union of non-zero labels
    one, two, three = rows
    assert one["case"] == "c1"
    assert one["dice"] == pytest.approx(0.75) and one["iou"] == pytest.approx(0.6)
    assert one["hd95"] == pytest.approx(2.0) and one["assd"] == pytest.approx(20 / 24)
    assert one["nsd"] == pytest.approx(1.0)
    assert (one["pred_voxels"], one["gt_voxels"]) == (16, 16)
    assert two["dice"] == 0.0 and two["nsd"] == 0.0 and math.isinf(two["hd95"])
    assert two["pred_empty"] and not two["gt_empty"]
    assert three["gt_empty"] and not three["pred_empty"] and math.isinf(three["assd"])
    cap = math.hypot(9 * 2.0, 11 * 1.0)
    assert all(r["cap_mm"] == pytest.approx(cap) for r in rows)
    assert distance_cap_mm((10, 12), (2.0, 1.0)) == pytest.approx(cap)


def test_explicit_labels_and_both_empty() -> None:
    pred, gt = _maps()
    rows = evaluate_case(pred, gt, labels=[1, 5])
    assert [r["label"] for r in rows] == [1, 5]
    five = rows[1]
    assert (five["dice"], five["iou"], five["hd95"], five["assd"], five["nsd"]) == (
        1.0,
        1.0,
        0.0,
        0.0,
        1.0,
    )
    assert five["pred_empty"] and five["gt_empty"]
    # unit spacing when neither input carries one
    assert rows[0]["hd95"] == pytest.approx(1.0) and rows[0]["assd"] == pytest.approx(0.5)


def test_labelmap_spacing_and_names() -> None:
    pred, gt = _maps()
    g = LabelMap(array=gt, spacing=(2.0, 1.0), label_names={1: "liver", 2: "spleen"})
    p = LabelMap(array=pred, spacing=(2.0, 1.0), label_names={1: "ignored", 3: "tumour"})
    rows = evaluate_case(p, g)
    assert [r["name"] for r in rows] == ["liver", "spleen", "tumour"]
    assert rows[0]["hd95"] == pytest.approx(2.0)
    # an explicit spacing overrides the LabelMap's
    assert evaluate_case(p, g, labels=[1], spacing=(1.0, 1.0))[0]["hd95"] == pytest.approx(1.0)


def test_3d_multilabel_matches_single_label_functions() -> None:
    from medseg.metrics import dice, surface_metrics

    rng = np.random.default_rng(0)
    gt = rng.integers(0, 4, size=(8, 9, 10)).astype(np.uint16)
    pred = np.where(rng.random(gt.shape) < 0.2, 0, gt).astype(np.uint16)
    rows = evaluate_case(pred, gt, spacing=(2.0, 0.5, 0.7), nsd_tolerance=1.0)
    assert [r["label"] for r in rows] == [1, 2, 3]
    for r in rows:
        lab = r["label"]
        assert r["dice"] == pytest.approx(dice(pred == lab, gt == lab))
        want = surface_metrics(pred == lab, gt == lab, (2.0, 0.5, 0.7), 1.0)
        assert {k: r[k] for k in want} == pytest.approx(want)


def test_bad_inputs() -> None:
    pred, gt = _maps()
    with pytest.raises(InputError, match=r"\(10, 12\).*\(10, 11\)"):
        evaluate_case(pred, gt[:, :11])
    with pytest.raises(InputError, match="non-integer"):
        evaluate_case(pred + 0.5, gt)
    with pytest.raises(InputError, match="NaN"):
        evaluate_case(np.full(gt.shape, np.nan), gt)
    with pytest.raises(InputError, match="negative"):
        evaluate_case(pred.astype(int) - 1, gt)
    with pytest.raises(InputError, match="positive"):
        evaluate_case(pred, gt, labels=[0, 1])
    with pytest.raises(InputError, match="spacing"):
        evaluate_case(pred, gt, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(InputError, match="2D"):
        evaluate_case(np.zeros(4, int), np.zeros(4, int))
