from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from synthetic_dicom import write_series  # tests/_support (pytest's pythonpath)

from medseg.cli.main import main
from medseg.io import load, load_label, save, save_dicom_seg
from medseg.io.image import LabelMap


def _label(shift: int = 0, spacing: tuple[float, float] = (2.0, 1.0)) -> LabelMap:
    arr = np.zeros((12, 12), np.uint8)
    arr[2 + shift : 6 + shift, 2:6] = 1  # 4x4 square, shifted along axis 0
    arr[8:10, 8:11] = 2
    return LabelMap(array=arr, spacing=spacing)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_two_files_table_csv_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save(_label(), tmp_path / "gt.nii.gz")
    save(_label(shift=1), tmp_path / "pred.nii.gz")
    out_csv, out_json = tmp_path / "o" / "m.csv", tmp_path / "o" / "s.json"
    code = main(
        [
            "evaluate",
            str(tmp_path / "pred.nii.gz"),
            str(tmp_path / "gt.nii.gz"),
            "--nsd-tolerance",
            "2",
            "--csv",
            str(out_csv),
            "--json",
            str(out_json),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "mean ± std" in text and "NSD tolerance 2 mm" in text
    one = next(line for line in text.splitlines() if line.startswith("1  "))
    assert "0.750 ± 0.000" in one  # Dice of the square shifted by one row
    rows = _read_csv(out_csv)
    assert [(r["case"], r["label"]) for r in rows] == [("gt", "1"), ("gt", "2")]
    # spacing (2, 1), shift along axis 0: HD95 = 2 mm, ASSD = 20/24 mm (tests/metrics)
    assert float(rows[0]["hd95"]) == pytest.approx(2.0)
    assert float(rows[0]["assd"]) == pytest.approx(20 / 24)
    assert float(rows[0]["nsd"]) == pytest.approx(1.0)
    assert float(rows[1]["dice"]) == 1.0
    summary = json.loads(out_json.read_text())
    assert summary["per_class"]["1"]["dice"]["mean"] == pytest.approx(0.75)
    assert summary["overall"]["dice"]["n"] == 2
    assert summary["config"]["nsd_tolerance_mm"] == 2.0
    assert "both_empty" in summary["config"]["empty_mask_rules"]


def test_folders_missing_and_unmatched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    save(_label(), gt / "a.png")
    save(_label(), gt / "b.png")
    save(_label(shift=2), pred / "a.png")
    save(_label(), pred / "extra.png")
    assert main(["evaluate", str(pred), str(gt)]) == 2
    assert "no prediction for 1 reference case(s): b" in capsys.readouterr().err

    out_json = tmp_path / "s.json"
    code = main(
        [
            "evaluate",
            str(pred),
            str(gt),
            "--allow-missing",
            "--labels",
            "1",
            "--json",
            str(out_json),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "scored as empty (no prediction): b" in text
    assert "without reference, not scored: extra" in text
    assert "capped" in text
    s = json.loads(out_json.read_text())
    assert s["missing_predictions"] == ["b"] and s["unmatched_predictions"] == ["extra"]
    dice = s["per_class"]["1"]["dice"]
    assert dice["mean"] == pytest.approx(0.25) and dice["n"] == 2  # (0.5 + 0) / 2
    assert s["per_class"]["1"]["hd95"]["n_capped"] == 1
    assert s["per_class"]["1"]["pred_empty"] == 1
    assert list(s["per_class"]) == ["1"]


def test_geometry_mismatch_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save(_label(), tmp_path / "gt.nii.gz")
    save(_label(spacing=(2.0, 1.5)), tmp_path / "pred.nii.gz")
    assert main(["evaluate", str(tmp_path / "pred.nii.gz"), str(tmp_path / "gt.nii.gz")]) == 2
    err = capsys.readouterr().err
    assert "medseg evaluate: error:" in err
    assert "pred.nii.gz: spacing [2.0, 1.5] differs from reference [2.0, 1.0]" in err


def test_totalseg_ct_against_itself_and_shifted(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """TotalSegmentator CT crop (3 mm isotropic, 41 classes present) vs itself, and vs a copy
    shifted one voxel along axis 1 (no class touches that border, so every surface point moves
    exactly one voxel: every directed distance is <= 3 mm)."""
    gt_path = shared_data / "totalseg_ref" / "labels" / "example_ct_sm.nii.gz"
    gt = load_label(gt_path)
    labels = gt.labels
    assert len(labels) == 41 and gt.spacing == (3.0, 3.0, 3.0)

    self_csv = tmp_path / "self.csv"
    assert main(["evaluate", str(gt_path), str(gt_path), "--csv", str(self_csv)]) == 0
    rows = _read_csv(self_csv)
    assert [int(r["label"]) for r in rows] == labels
    for r in rows:
        assert (float(r["dice"]), float(r["hd95"]), float(r["assd"]), float(r["nsd"])) == (
            1.0,
            0.0,
            0.0,
            1.0,
        )

    a = gt.array
    assert not a[:, -1].any()  # nothing falls off when shifting along axis 1
    shifted = np.zeros_like(a)
    shifted[:, 1:] = a[:, :-1]
    pred_path = tmp_path / "example_ct_sm.nii.gz"
    save(gt.with_array(shifted), pred_path)
    shift_csv = tmp_path / "shift.csv"
    assert (
        main(
            [
                "evaluate",
                str(pred_path),
                str(gt_path),
                "--nsd-tolerance",
                "3",
                "--csv",
                str(shift_csv),
            ]
        )
        == 0
    )
    capsys.readouterr()
    rows = _read_csv(shift_csv)
    assert [int(r["label"]) for r in rows] == labels
    for r in rows:
        m = a == int(r["label"])
        s = shifted == int(r["label"])
        want = 2 * np.count_nonzero(m & s) / (m.sum() + s.sum())
        assert float(r["dice"]) == pytest.approx(want, abs=1e-12)
        assert 0.0 <= float(r["hd95"]) <= 3.0 + 1e-6
        assert 0.0 < float(r["assd"]) <= 3.0 + 1e-6
        assert float(r["nsd"]) == pytest.approx(1.0, abs=1e-6)


def test_label_names_file_in_table_csv_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save(_label(), tmp_path / "gt.nii.gz")  # NIfTI stores no names
    save(_label(shift=1), tmp_path / "pred.nii.gz")
    names = tmp_path / "dataset.json"
    names.write_text(json.dumps({"labels": {"background": 0, "spleen": 1, "kidney": 2}}))
    out_csv, out_json = tmp_path / "m.csv", tmp_path / "s.json"
    args = ["evaluate", str(tmp_path / "pred.nii.gz"), str(tmp_path / "gt.nii.gz"),
            "--label-names", str(names), "--csv", str(out_csv),
            "--json", str(out_json)]  # fmt: skip
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("1      spleen  ") for line in lines)
    assert any(line.startswith("2      kidney  ") for line in lines)
    assert [r["name"] for r in _read_csv(out_csv)] == ["spleen", "kidney"]
    summary = json.loads(out_json.read_text())
    assert summary["per_class"]["2"]["name"] == "kidney"
    assert summary["config"]["label_names"] == {"0": "background", "1": "spleen", "2": "kidney"}
    names.write_text("{oops")
    assert main(args) == 2
    assert "dataset.json: not valid JSON" in capsys.readouterr().err


def test_names_from_dicom_seg_reach_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = write_series(tmp_path / "ct", shape=(3, 4, 5))
    ref = load(s.folder)
    arr = np.zeros(ref.shape, np.uint8)
    arr[1, 1:3, 1:3] = 1
    seg = save_dicom_seg(LabelMap.like(ref, arr, {1: "tumour"}), s.folder, tmp_path / "seg.dcm")
    pred = save(LabelMap.like(ref, arr), tmp_path / "pred.nii.gz")  # no names
    assert main(["evaluate", str(pred), str(seg)]) == 0
    assert any(line.startswith("1      tumour") for line in capsys.readouterr().out.splitlines())


def test_totalseg_names_from_manifest_file(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = json.loads((shared_data / "manifest.json").read_text())
    (ds,) = [d for d in manifest["datasets"] if d["name"] == "totalseg_ref"]
    names = tmp_path / "names.json"
    names.write_text(json.dumps(ds["label_names"]))
    gt = shared_data / "totalseg_ref" / "labels" / "example_ct_sm.nii.gz"
    out_csv = tmp_path / "m.csv"
    args = ["evaluate", str(gt), str(gt), "--labels", "1", "5", "--label-names", str(names)]
    assert main([*args, "--csv", str(out_csv)]) == 0
    rows = _read_csv(out_csv)
    assert [r["name"] for r in rows] == [ds["label_names"]["1"], ds["label_names"]["5"]]
    assert all(r["name"] for r in rows)
    assert ds["label_names"]["1"] in capsys.readouterr().out
