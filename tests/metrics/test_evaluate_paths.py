from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import InputError
from medseg.io import save
from medseg.io.image import LabelMap
from medseg.metrics.evaluate import (
    EvaluationConfig,
    case_stem,
    check_geometry,
    evaluate_paths,
    match_cases,
    write_csv,
    write_json,
)


def _label(shift: int = 0, **geometry: object) -> LabelMap:
    arr = np.zeros((6, 10, 10), np.uint8)
    arr[1:5, 2 + shift : 6 + shift, 2:6] = 1  # 4x4x4 cube, shifted along axis 1
    arr[2:4, 7:9, 7:9] = 2
    return LabelMap(array=arr, spacing=geometry.pop("spacing", (2.0, 1.0, 1.0)), **geometry)


def test_case_stem() -> None:
    assert case_stem("a/b/case_01.nii.gz") == "case_01"
    assert case_stem("x.NII") == "x"
    assert case_stem("img.v2.png") == "img.v2"
    assert case_stem("scan.nrrd") == "scan"
    assert case_stem("noext") == "noext"


def test_match_folders(tmp_path: Path) -> None:
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    for name in ("a.nii.gz", "b.nii.gz"):
        (gt / name).write_bytes(b"x")
    for name in ("a.nii.gz", "c.nrrd", "notes.txt", ".hidden.png"):
        (pred / name).write_bytes(b"x")
    m = match_cases(pred, gt)
    assert m.pairs == [("a", pred / "a.nii.gz", gt / "a.nii.gz"), ("b", None, gt / "b.nii.gz")]
    assert m.missing_predictions == ["b"]
    assert m.unmatched_predictions == ["c"]
    (pred / "a.nii").write_bytes(b"x")
    with pytest.raises(InputError, match="two files for case 'a'"):
        match_cases(pred, gt)
    with pytest.raises(InputError, match="two files or two folders"):
        match_cases(pred, gt / "a.nii.gz")
    with pytest.raises(InputError, match="does not exist"):
        match_cases(tmp_path / "nope", gt)


def test_check_geometry_names_file_and_difference() -> None:
    gt = _label()
    check_geometry(_label(origin=(0.0, 0.0, 0.0005)), gt)  # within tolerance
    with pytest.raises(InputError, match=r"p\.nii\.gz: spacing \[2\.0, 1\.0, 1\.5\]"):
        check_geometry(_label(spacing=(2.0, 1.0, 1.5), meta={"path": "p.nii.gz"}), gt)
    with pytest.raises(InputError, match="origin"):
        check_geometry(_label(origin=(0.0, 5.0, 0.0)), gt)
    with pytest.raises(InputError, match="direction"):
        check_geometry(_label(direction=np.diag([-1.0, 1.0, 1.0])), gt)
    small = LabelMap(array=np.zeros((6, 10, 9), np.uint8))
    with pytest.raises(InputError, match=r"shape \(6, 10, 9\) differs .* \(6, 10, 10\)"):
        check_geometry(small, gt)


def _write_folders(tmp_path: Path) -> tuple[Path, Path]:
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    save(_label(), gt / "c1.nii.gz")
    save(_label(), gt / "c2.nii.gz")
    save(_label(), pred / "c1.nii.gz")  # perfect
    return pred, gt


def test_evaluate_paths_missing_prediction(tmp_path: Path) -> None:
    pred, gt = _write_folders(tmp_path)
    with pytest.raises(InputError, match=r"no prediction for 1 .*c2.*--allow-missing"):
        evaluate_paths(pred, gt, EvaluationConfig())
    result = evaluate_paths(pred, gt, EvaluationConfig(allow_missing=True, nsd_tolerance_mm=1.0))
    rows = {(r["case"], r["label"]): r for r in result.rows}
    assert rows["c1", 1]["dice"] == 1.0 and rows["c1", 2]["hd95"] == 0.0
    assert rows["c2", 1]["dice"] == 0.0 and math.isinf(rows["c2", 1]["hd95"])
    s = result.summary
    assert s["missing_predictions"] == ["c2"] and s["cases"] == ["c1", "c2"]
    assert s["config"]["nsd_tolerance_mm"] == 1.0 and s["config"]["allow_missing"] is True
    cap = math.sqrt((5 * 2.0) ** 2 + 9**2 + 9**2)
    hd = s["per_class"][1]["hd95"]
    assert hd["mean"] == pytest.approx(cap / 2) and hd["n_capped"] == 1
    assert s["per_class"][1]["dice"]["mean"] == pytest.approx(0.5)


def test_evaluate_paths_shifted_file(tmp_path: Path) -> None:
    save(_label(), tmp_path / "gt.nii.gz")
    save(_label(shift=1), tmp_path / "pred.nii.gz")
    result = evaluate_paths(
        tmp_path / "pred.nii.gz", tmp_path / "gt.nii.gz", EvaluationConfig(labels=(1,))
    )
    (row,) = result.rows
    assert row["case"] == "gt"
    assert row["dice"] == pytest.approx(0.75)  # 4x4x4 cube vs shift 1: overlap 48 of 64
    assert row["hd95"] == pytest.approx(1.0)  # shift along axis 1, spacing 1 mm there
    assert row["assd"] == pytest.approx(40 / 112)


def test_geometry_mismatch_is_an_error(tmp_path: Path) -> None:
    save(_label(), tmp_path / "gt.nii.gz")
    save(_label(spacing=(2.0, 1.0, 1.1)), tmp_path / "pred.nii.gz")
    with pytest.raises(InputError, match=r"pred\.nii\.gz: spacing"):
        evaluate_paths(tmp_path / "pred.nii.gz", tmp_path / "gt.nii.gz", EvaluationConfig())


def test_config_validation() -> None:
    with pytest.raises(InputError, match="tolerance"):
        EvaluationConfig(nsd_tolerance_mm=-1.0)
    with pytest.raises(InputError, match="positive"):
        EvaluationConfig(labels=(0, 2))
    assert EvaluationConfig(labels=[2, 1]).to_dict()["labels"] == [2, 1]  # type: ignore[arg-type]


def test_writers(tmp_path: Path) -> None:
    rows = [
        {
            "case": "a",
            "label": 1,
            "name": "liver",
            "dice": 0.5,
            "iou": 1 / 3,
            "hd95": math.inf,
            "assd": 2.0,
            "nsd": 0.25,
            "pred_voxels": 3,
            "gt_voxels": 0,
            "pred_empty": False,
            "gt_empty": True,
            "cap_mm": 10.0,
        }
    ]
    write_csv(rows, tmp_path / "out" / "m.csv")
    with open(tmp_path / "out" / "m.csv", newline="") as fh:
        (line,) = list(csv.DictReader(fh))
    assert line["hd95"] == "inf" and line["gt_empty"] == "1" and line["pred_empty"] == "0"
    assert float(line["iou"]) == 1 / 3 and line["name"] == "liver"
    write_json({"x": math.nan, 3: [math.inf, 1.5]}, tmp_path / "s.json")
    assert json.loads((tmp_path / "s.json").read_text()) == {"x": None, "3": [None, 1.5]}
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["m.csv", "out", "s.json"]
