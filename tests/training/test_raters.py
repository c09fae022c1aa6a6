"""Training from several raters (``medseg.training.raters``, ``auto train|run --raters``)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from medseg.automatic.plan import PlanBudget
from medseg.data.fusion import fleiss_kappa
from medseg.data.nnunet import read_dataset
from medseg.errors import InputError
from medseg.io import load_label, save
from medseg.io.image import LabelMap
from medseg.training.cache import dataset_cache_key, plan_cache_key, preprocess_dataset
from medseg.training.fingerprint import compute_fingerprint
from medseg.training.planning import plan_experiment
from medseg.training.raters import find_rater_dirs, prepare_rater_dataset
from medseg.training.report import format_rater_tables
from medseg.training.synthetic import write_disk_dataset

#: Row 0 of each rater's 4x6 label of case00 (case01: the same rows mirrored left-right).
ROWS = {
    "anna": [1, 1, 2, 0, 0, 0],
    "ben": [1, 0, 2, 2, 0, 0],
    "cleo": [1, 1, 0, 2, 0, 1],
}
FUSED_ROW = [1, 1, 2, 2, 0, 0]  # majority vote of the three rows


def _label(row: list[int], mirror: bool = False) -> np.ndarray:
    a = np.zeros((4, 6), np.uint8)
    a[0] = row[::-1] if mirror else row
    return a


def _rater_dataset(root: Path, rows: dict[str, list[int]] = ROWS) -> Path:
    """Two 4x6 cases, classes a=1 and b=2, one ``labelsTr_<rater>`` folder per rater, no
    ``labelsTr``."""
    write_disk_dataset(root, 2, (4, 6))
    shutil.rmtree(root / "labelsTr")
    meta = json.loads((root / "dataset.json").read_text())
    meta["labels"] = {"background": 0, "a": 1, "b": 2}
    (root / "dataset.json").write_text(json.dumps(meta))
    for name, row in rows.items():
        save(LabelMap(_label(row)), root / f"labelsTr_{name}" / "case00.png")
        save(LabelMap(_label(row, mirror=True)), root / f"labelsTr_{name}" / "case01.png")
    return root


def test_fused_labels_dataset_view_and_raters_json(tmp_path: Path) -> None:
    root = _rater_dataset(tmp_path / "ds")
    model = tmp_path / "model"
    view, summary = prepare_rater_dataset(root, model, method="vote")
    assert view == model / "fused_data"
    np.testing.assert_array_equal(
        load_label(model / "fused_labels" / "case00.png").array, _label(FUSED_ROW)
    )
    np.testing.assert_array_equal(
        load_label(model / "fused_labels" / "case01.png").array, _label(FUSED_ROW, mirror=True)
    )
    assert json.loads((view / "dataset.json").read_text()) == json.loads(
        (root / "dataset.json").read_text()
    )
    assert (view / "imagesTr").resolve() == (root / "imagesTr").resolve()
    assert os.readlink(view / "labelsTr") == os.path.join("..", "fused_labels")
    ds = read_dataset(view)
    assert [c.case_id for c in ds.training] == ["case00", "case01"] and not ds.problems
    assert ds.name == "synthetic_disks"
    assert summary == json.loads((model / "raters.json").read_text())
    assert (view / "labels_hash.txt").read_text().strip() == summary["labels_hash"]
    assert summary["method"] == "vote" and summary["raters"] == ["anna", "ben", "cleo"]
    assert summary["n_cases"] == 2
    # class 1: masks {0,1} {0} {0,1,5}: pairs 2/3, 4/5, 1/2; vs fused {0,1}: 1, 2/3, 4/5
    c1 = summary["per_class"]["1"]
    assert c1["name"] == "a" and c1["n_cases"] == 2
    assert c1["pairwise_dice"] == pytest.approx((2 / 3 + 4 / 5 + 1 / 2) / 3)
    assert c1["dice_vs_fused"] == pytest.approx({"anna": 1.0, "ben": 2 / 3, "cleo": 4 / 5})
    # class 2: {2} {2,3} {3}: pairs 2/3, 0, 2/3; vs fused {2,3}: 2/3, 1, 2/3
    c2 = summary["per_class"]["2"]
    assert c2["pairwise_dice"] == pytest.approx(4 / 9)
    assert c2["dice_vs_fused"] == pytest.approx({"anna": 2 / 3, "ben": 1.0, "cleo": 2 / 3})
    case = summary["cases"][0]
    assert case["case"] == "case00"
    assert case["per_class"]["2"]["pairwise_dice"] == pytest.approx(4 / 9)
    assert case["pairwise_dice"] == pytest.approx((2 / 3 + 2 / 5 + 7 / 12) / 3)
    assert case["dice_vs_fused"] == pytest.approx({"anna": 5 / 6, "ben": 5 / 6, "cleo": 11 / 15})
    kappa = fleiss_kappa([_label(r) for r in ROWS.values()])
    assert case["fleiss_kappa"] == pytest.approx(kappa)
    assert summary["mean_fleiss_kappa"] == pytest.approx(kappa)  # mirrored case: same kappa


def test_fusion_runs_once_and_the_cache_follows_the_fused_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medseg.data.fusion as fusion

    root = _rater_dataset(tmp_path / "ds")
    model = tmp_path / "model"
    view, first = prepare_rater_dataset(root, model, method="vote")
    ds = read_dataset(view)
    plan = plan_experiment(compute_fingerprint(ds), PlanBudget(configuration="2d"))
    key = dataset_cache_key(plan, view)
    assert key == f"{plan_cache_key(plan)} labels {first['labels_hash']}"
    assert dataset_cache_key(plan, root) == plan_cache_key(plan)  # no fused labels: plan only
    cache = preprocess_dataset(ds, plan, model / "preprocessed")
    assert (cache / "plan_key.txt").read_text().strip() == key

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("fused again")

    with monkeypatch.context() as m:  # same raters and method: the fused labels are reused
        m.setattr(fusion, "fuse_labels", refuse)
        assert prepare_rater_dataset(root, model, method="vote") == (view, first)
    # another method refuses the reuse (STAPLE gives the same labels here: same cache key)
    assert prepare_rater_dataset(root, model, method="staple")[1]["method"] == "staple"
    # rater ben changes his mind: the fused labels change, and so does the cache key
    save(LabelMap(_label([1, 1, 0, 0, 0, 0])), root / "labelsTr_ben" / "case00.png")
    _, second = prepare_rater_dataset(root, model, method="vote")
    assert second["labels_hash"] != first["labels_hash"]
    fused = load_label(model / "fused_labels" / "case00.png").array
    np.testing.assert_array_equal(fused, _label([1, 1, 0, 0, 0, 0]))  # b: no majority now
    stamp = (cache / "case01.npy").stat().st_mtime_ns
    preprocess_dataset(read_dataset(view), plan, cache)
    assert (cache / "plan_key.txt").read_text().strip().endswith(second["labels_hash"])
    assert (cache / "case01.npy").stat().st_mtime_ns != stamp  # rebuilt
    np.testing.assert_array_equal(np.load(cache / "case00_seg.npy")[0], fused[0])


def test_rater_errors_name_the_case_and_rater(tmp_path: Path) -> None:
    root = _rater_dataset(tmp_path / "ds")
    model = tmp_path / "model"
    (root / "labelsTr_ben" / "case01.png").unlink()
    with pytest.raises(InputError, match=r"labelsTr_ben lacks case01"):
        prepare_rater_dataset(root, model)
    save(LabelMap(np.zeros((4, 5), np.uint8)), root / "labelsTr_ben" / "case01.png")
    with pytest.raises(InputError, match=r"case case01: .*labelsTr_anna.*\(4, 6\).*ben.*\(4, 5\)"):
        prepare_rater_dataset(root, model)
    save(LabelMap(_label([3, 0, 0, 0, 0, 0])), root / "labelsTr_ben" / "case01.png")
    with pytest.raises(InputError, match=r"case case01: rater ben .* label values \[3\]"):
        prepare_rater_dataset(root, model)
    save(LabelMap(_label([1, 0, 0, 0, 0, 0])), root / "labelsTr_ben" / "case02.png")
    (root / "labelsTr_anna" / "case02.png").write_bytes((root / "labelsTr_ben" / "case02.png")
                                                        .read_bytes())  # fmt: skip
    shutil.copy(root / "labelsTr_ben" / "case02.png", root / "labelsTr_cleo" / "case02.png")
    with pytest.raises(InputError, match="case case02: the raters label it but imagesTr has no"):
        prepare_rater_dataset(root, model)
    for name in ROWS:
        (root / f"labelsTr_{name}" / "case02.png").unlink()
    (root / "imagesTr" / "case01_0000.png").rename(root / "imagesTr" / "case03_0000.png")
    with pytest.raises(InputError, match="case case03 has an image in imagesTr but no label"):
        prepare_rater_dataset(root, model)
    with pytest.raises(InputError, match="at least 2 rater label folders, 1 given with --raters"):
        prepare_rater_dataset(root, model, [root / "labelsTr_anna"])
    with pytest.raises(InputError, match=r"rater label folder .*nope does not exist"):
        find_rater_dirs(root, [root / "labelsTr_anna", root / "nope"])
    with pytest.raises(InputError, match=r"at least 2 rater label folders, 0 found in .*other"):
        find_rater_dirs(tmp_path / "other")
    with pytest.raises(InputError, match="unknown fusion method 'mean'"):
        prepare_rater_dataset(root, model, method="mean")
    assert not (model / "raters.json").exists()


def test_rater_file_with_another_ending_is_refused(tmp_path: Path) -> None:
    root = _rater_dataset(tmp_path / "ds", {"anna": ROWS["anna"], "ben": ROWS["ben"]})
    d = tmp_path / "ben_nii"
    for case in ("case00", "case01"):
        save(load_label(root / "labelsTr_ben" / f"{case}.png"), d / f"{case}.nii.gz")
    with pytest.raises(
        InputError, match=r"case case00: rater ben_nii's file .* file_ending '.png'"
    ):
        prepare_rater_dataset(root, tmp_path / "m", [root / "labelsTr_anna", d])


def test_rater_tables_in_the_report() -> None:
    raters = {
        "method": "staple",
        "raters": ["anna", "ben"],
        "n_cases": 2,
        "mean_pairwise_dice": 0.75,
        "mean_fleiss_kappa": 0.5,
        "per_class": {"1": {"name": "liver", "n_cases": 2, "pairwise_dice": 0.75,
                            "dice_vs_fused": {"anna": 1.0, "ben": 0.5}}},
        "cases": [
            {"case": "c0", "pairwise_dice": 1.0, "fleiss_kappa": 1.0,
             "dice_vs_fused": {"anna": 1.0, "ben": 1.0}},
            {"case": "c1", "pairwise_dice": 0.5, "fleiss_kappa": 0.0,
             "dice_vs_fused": {"anna": 1.0, "ben": 0.0}},
        ],
    }  # fmt: skip
    assert format_rater_tables(raters).splitlines() == [
        "2 raters (anna, ben), fused by staple over 2 cases: mean pairwise Dice 0.750, mean "
        "Fleiss' kappa 0.500.",
        "",
        "| class | cases | pairwise Dice | anna vs fused | ben vs fused |",
        "|---|---|---|---|---|",
        "| 1 liver | 2 | 0.750 | 1.000 | 0.500 |",
        "",
        "| case | pairwise Dice | Fleiss' kappa | anna vs fused | ben vs fused |",
        "|---|---|---|---|---|",
        "| c0 | 1.000 | 1.000 | 1.000 | 1.000 |",
        "| c1 | 0.500 | 0.000 | 1.000 | 0.000 |",
    ]


def test_rater_table_keeps_the_least_agreeing_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    import medseg.training.report as report

    monkeypatch.setattr(report, "MAX_RATER_CASES", 2)
    cases = [{"case": f"c{i}", "pairwise_dice": d, "fleiss_kappa": d,
              "dice_vs_fused": {"anna": d, "ben": d}}
             for i, d in enumerate([0.9, 0.2, 0.8, 0.1])]  # fmt: skip
    raters = {"method": "vote", "raters": ["anna", "ben"], "n_cases": 4,
              "mean_pairwise_dice": 0.5, "mean_fleiss_kappa": 0.5, "per_class": {},
              "cases": cases}  # fmt: skip
    lines = format_rater_tables(raters).splitlines()
    assert "The 2 cases of lowest pairwise Dice:" in lines
    assert [line.split(" | ")[0] for line in lines[-2:]] == ["| c1", "| c3"]


def test_3d_raters_keep_the_image_geometry(tmp_path: Path) -> None:
    from medseg.data.nnunet import check_dataset

    root = write_disk_dataset(tmp_path / "ds", 2, (4, 8, 8), spacing=(2.0, 1.0, 1.0))
    for name in ("r1", "r2"):
        shutil.copytree(root / "labelsTr", root / f"labelsTr_{name}")
    truth = load_label(root / "labelsTr" / "case01.nii.gz")
    shutil.rmtree(root / "labelsTr")
    view, summary = prepare_rater_dataset(root, tmp_path / "model")
    assert summary["mean_pairwise_dice"] == 1.0 and summary["raters"] == ["r1", "r2"]
    fused = load_label(view / "labelsTr" / "case01.nii.gz")
    np.testing.assert_array_equal(fused.array, truth.array)
    assert fused.same_geometry(truth) and fused.spacing == (2.0, 1.0, 1.0)
    assert check_dataset(read_dataset(view)) == []
