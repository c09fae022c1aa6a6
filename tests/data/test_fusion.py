"""Rater fusion (medseg.data.fusion, ``medseg fuse``): exact values on hand-built masks."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from medseg.cli.main import main
from medseg.data.fusion import (
    agreement,
    class_agreement,
    find_rater_cases,
    fleiss_kappa,
    fuse_folders,
    fuse_labels,
    label_dice,
    majority_vote,
    staple,
)
from medseg.errors import InputError
from medseg.io import load_label, save
from medseg.io.image import LabelMap


def _square() -> np.ndarray:
    """6x6 truth: a 3x3 square of label 1 (9 foreground, 27 background pixels)."""
    a = np.zeros((6, 6), np.uint8)
    a[1:4, 1:4] = 1
    return a


def _three_raters() -> list[np.ndarray]:
    """Raters 1 and 2 draw the truth; rater 3 misses (1, 1) and adds (4, 4)."""
    a = _square()
    c = a.copy()
    c[1, 1], c[4, 4] = 0, 1
    return [a, a.copy(), c]


def test_staple_three_raters_known_answer() -> None:
    res = staple(_three_raters())
    np.testing.assert_array_equal(res.labels, _square())
    np.testing.assert_allclose(res.probabilities[1], _square().astype(float), atol=1e-6)
    # rater 3: 8 of 9 foreground pixels found, 26 of 27 background pixels kept
    np.testing.assert_allclose(res.sensitivity[1], (1.0, 1.0, 8 / 9))
    np.testing.assert_allclose(res.specificity[1], (1.0, 1.0, 26 / 27))


def test_staple_identical_raters_and_two_labels() -> None:
    a = _square()
    a[5, 5] = 2
    res = staple([a, a.copy()])
    np.testing.assert_array_equal(res.labels, a)
    assert res.sensitivity == {1: (1.0, 1.0), 2: (1.0, 1.0)}


def test_staple_3d_two_labels() -> None:
    truth = np.zeros((3, 5, 5), np.uint8)
    truth[1, 1:3, 1:3] = 1
    truth[1, 3:5, 3:5] = 2
    r3 = truth.copy()
    r3[1, 1, 1] = 0
    r3[0, 0, 0] = 2
    np.testing.assert_array_equal(fuse_labels([truth, truth.copy(), r3], "staple"), truth)


def test_vote_majority_and_ties_to_background() -> None:
    a = np.array([[1, 1, 0, 2]], np.uint8)
    b = np.array([[1, 0, 2, 2]], np.uint8)
    c = np.array([[0, 1, 1, 0]], np.uint8)
    # votes: [1,1,0] -> 1; [1,0,1] -> 1; [0,2,1] tie -> 0; [2,2,0] -> 2
    np.testing.assert_array_equal(majority_vote([a, b, c]), [[1, 1, 0, 2]])
    # two raters disagreeing: every disagreement is a tie -> background
    np.testing.assert_array_equal(majority_vote([a, b]), [[1, 0, 0, 2]])
    assert majority_vote([a, b]).dtype == np.uint8


def test_fuse_labels_bad_inputs() -> None:
    a = _square()
    with pytest.raises(InputError, match="at least 2 raters"):
        fuse_labels([a], "vote")
    with pytest.raises(InputError, match="different shapes"):
        fuse_labels([a, a[:5]], "staple")
    with pytest.raises(InputError, match="unknown fusion method 'mean'"):
        fuse_labels([a, a], "mean")
    with pytest.raises(InputError, match="integers"):
        fuse_labels([a, a.astype(float)], "vote")


def test_label_dice_and_fleiss_kappa_exact() -> None:
    a, b = _square(), _square()
    b[1, 1] = 0  # 8 of a's 9 pixels: Dice = 16 / 17
    assert label_dice(a, b) == pytest.approx(16 / 17)
    assert label_dice(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0
    assert fleiss_kappa([a, a]) == 1.0
    assert fleiss_kappa([np.zeros((2, 2), int)] * 3) == 1.0
    # 2 raters, 4 voxels: agree on 0 and 1 once each, disagree twice
    x, y = np.array([[0, 1, 0, 1]]), np.array([[0, 1, 1, 0]])
    # P_bar = (1 + 1 + 0 + 0) / 4 = 0.5; p = (0.5, 0.5), P_e = 0.5 -> kappa 0
    assert fleiss_kappa([x, y]) == pytest.approx(0.0)


def test_agreement_row() -> None:
    raters = _three_raters()
    row = agreement("c", raters, _square())
    d3 = label_dice(raters[2], _square())  # 2*8 / (9 + 9)
    assert d3 == pytest.approx(16 / 18)
    assert row.dice_vs_fused == pytest.approx((1.0, 1.0, 16 / 18))
    assert row.pairwise_dice == pytest.approx((1.0 + 16 / 18 + 16 / 18) / 3)


def test_class_agreement_two_labels_exact() -> None:
    """Per-class pairwise Dice and Dice vs fused, by hand on three 1x6 raters."""
    a = np.array([[1, 1, 2, 0, 0, 0]], np.uint8)
    b = np.array([[1, 0, 2, 2, 0, 0]], np.uint8)
    c = np.array([[1, 1, 0, 2, 0, 1]], np.uint8)
    fused = majority_vote([a, b, c])
    np.testing.assert_array_equal(fused, [[1, 1, 2, 2, 0, 0]])
    per = class_agreement([a, b, c], fused)
    assert sorted(per) == [1, 2]
    # class 1: {0,1} {0} {0,1,5}: pairs 2/3, 4/5, 1/2; vs fused {0,1}: 1, 2/3, 4/5
    assert per[1].pairwise_dice == pytest.approx((2 / 3 + 4 / 5 + 1 / 2) / 3)
    assert per[1].dice_vs_fused == pytest.approx((1.0, 2 / 3, 4 / 5))
    # class 2: {2} {2,3} {3}: pairs 2/3, 0, 2/3; vs fused {2,3}: 2/3, 1, 2/3
    assert per[2].pairwise_dice == pytest.approx(4 / 9)
    assert per[2].dice_vs_fused == pytest.approx((2 / 3, 1.0, 2 / 3))
    row = agreement("x", [a, b, c], fused)
    assert row.per_class == per
    # per case: mean over the labels either map holds, pairs (2/3+2/3)/2, (4/5+0)/2, (1/2+2/3)/2
    assert row.pairwise_dice == pytest.approx((2 / 3 + 2 / 5 + 7 / 12) / 3)
    assert row.dice_vs_fused == pytest.approx((5 / 6, 5 / 6, 11 / 15))
    # a label only one rater drew: the two empty masks agree (1.0), the others score 0
    d = np.array([[0, 0, 0, 0, 0, 3]], np.uint8)
    zero = np.zeros_like(d)
    per3 = class_agreement([zero, zero, d], zero)
    assert per3[3].pairwise_dice == pytest.approx(1 / 3)
    assert per3[3].dice_vs_fused == (1.0, 1.0, 0.0)


def _write_raters(root: Path, ending: str = ".png") -> list[Path]:
    dirs = []
    for i, arr in enumerate(_three_raters()):
        d = root / f"rater{i}"
        save(LabelMap(arr), d / f"case1{ending}")
        save(LabelMap(arr.T.copy()), d / f"case2{ending}")
        dirs.append(d)
    return dirs


@pytest.mark.parametrize(("method", "ending"), [("staple", ".png"), ("vote", ".nii.gz")])
def test_fuse_folders_writes_cases_and_csv(tmp_path: Path, method: str, ending: str) -> None:
    dirs = _write_raters(tmp_path, ending)
    res = fuse_folders(dirs, tmp_path / "out", method)
    assert [p.name for p in res.written] == [f"case1{ending}", f"case2{ending}"]
    np.testing.assert_array_equal(load_label(tmp_path / "out" / f"case1{ending}").array, _square())
    np.testing.assert_array_equal(load_label(res.written[1]).array, _square().T)
    rows = list(csv.DictReader(res.csv_path.open()))
    assert res.csv_path == tmp_path / "out" / "agreement.csv"
    assert [r["case"] for r in rows] == ["case1", "case2"]
    assert rows[0]["dice_rater2_vs_fused"] == f"{16 / 18:.4f}"
    assert rows[0]["method"] == method


def test_fuse_folders_missing_cases_named(tmp_path: Path) -> None:
    dirs = _write_raters(tmp_path)
    (dirs[1] / "case2.png").unlink()
    save(LabelMap(_square()), dirs[2] / "case3.png")
    with pytest.raises(InputError) as exc:
        find_rater_cases(dirs)
    msg = str(exc.value)
    assert "rater0 lacks case3" in msg and "rater1 lacks case2, case3" in msg
    assert "rater2" not in msg.replace(str(dirs[2].parent), "")


def test_fuse_folders_different_grid_named_and_nothing_written(tmp_path: Path) -> None:
    dirs = _write_raters(tmp_path)
    save(LabelMap(np.zeros((5, 6), np.uint8)), dirs[2] / "case2.png")
    with pytest.raises(InputError, match=r"case case2: .*\(6, 6\).*\(5, 6\)"):
        fuse_folders(dirs, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_fuse_folders_refuses_spacing_mismatch_and_rater_as_output(tmp_path: Path) -> None:
    dirs = _write_raters(tmp_path, ".nii.gz")
    save(LabelMap(_square(), spacing=(2.0, 1.0)), dirs[1] / "case1.nii.gz")
    with pytest.raises(InputError, match=r"case case1: .*spacing"):
        fuse_folders(dirs, tmp_path / "out")
    with pytest.raises(InputError, match="is a rater folder"):
        fuse_folders(dirs, dirs[0])
    with pytest.raises(InputError, match="at least 2 rater folders"):
        fuse_folders(dirs[:1], tmp_path / "out")


def test_cli_fuse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dirs = _write_raters(tmp_path)
    out = tmp_path / "fused"
    code = main(["fuse", *map(str, dirs), "-o", str(out), "--method", "vote", "--csv",
                 str(tmp_path / "a.csv")])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert text.startswith("case,method,pairwise_dice,fleiss_kappa,dice_rater0_vs_fused")
    assert (tmp_path / "a.csv").read_text() in text
    np.testing.assert_array_equal(load_label(out / "case1.png").array, _square())
    assert main(["fuse", str(dirs[0]), "-o", str(out)]) == 2
