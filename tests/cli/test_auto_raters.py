"""``medseg auto train|run --raters`` end to end on tiny synthetic disks with three raters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.cli.main import main
from medseg.io import load_label, save
from medseg.io.image import LabelMap
from medseg.training.synthetic import write_disk_dataset


def _disks_with_raters(root: Path, n: int = 4) -> Path:
    """Disks; rater ``a`` draws the truth, ``b`` adds one pixel, ``c`` shifts it by one
    column; ``labelsTr`` is removed (only the raters' folders label the cases)."""
    write_disk_dataset(root, n, (24, 24))
    for name in ("a", "b", "c"):
        for f in sorted((root / "labelsTr").glob("*.png")):
            arr = load_label(f).array.astype(np.uint8)
            if name == "b":
                arr[0, 0] = 1
            if name == "c":
                arr = np.roll(arr, 1, axis=1)
            save(LabelMap(arr, spacing=(1.0, 1.0)), root / f"labelsTr_{name}" / f.name)
    shutil.rmtree(root / "labelsTr")
    return root


def test_raters_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _disks_with_raters(tmp_path / "ds", 2)
    model = tmp_path / "model"
    base = ["auto", "train", str(root), "--out", str(model), "--iterations", "1"]
    assert main([*base, "--fuse", "vote"]) == 2
    assert "--fuse only applies with --raters" in capsys.readouterr().err
    assert main([*base, "--raters", str(root / "labelsTr_a")]) == 2
    assert "at least 2 rater label folders, 1 given with --raters" in capsys.readouterr().err
    (root / "labelsTr_c" / "case01.png").unlink()
    assert main([*base, "--raters"]) == 2
    assert "labelsTr_c lacks case01" in capsys.readouterr().err
    assert not model.exists()  # the failed run left no model folder


@pytest.mark.slow
def test_auto_train_with_raters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    root = _disks_with_raters(tmp_path / "ds")
    model = tmp_path / "model"
    args = ["auto", "train", str(root), "--out", str(model), "--raters", "--iterations", "2",
            "--threads", "1"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "fused 3 raters (staple) of 4 cases" in out
    assert "finished at iteration 2/2" in out
    raters = json.loads((model / "raters.json").read_text())
    assert raters["raters"] == ["a", "b", "c"] and raters["n_cases"] == 4
    assert raters["mean_dice_vs_fused"]["a"] == 1.0  # STAPLE keeps the two agreeing raters
    assert sorted(p.name for p in (model / "fused_labels").iterdir()) == [
        f"case{i:02d}.png" for i in range(4)
    ]
    assert (model / "fold_0" / "checkpoint_final.pt").is_file()
    key = (model / "preprocessed" / "plan_key.txt").read_text().strip()
    assert key.endswith(f" labels {raters['labels_hash']}")
    fused = load_label(model / "fused_labels" / "case00.png").array
    np.testing.assert_array_equal(np.load(model / "preprocessed" / "case00_seg.npy"), fused)


@pytest.mark.slow
def test_auto_run_with_raters_reports_agreement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``auto run --raters --fuse vote``: the report has the rater tables, and the run
    preprocesses and computes the splits once (issue 14)."""
    import medseg.training.cache as cache
    import medseg.training.data as data

    torch.manual_seed(0)
    root = _disks_with_raters(tmp_path / "ds")
    calls = {"splits": 0, "preprocess": 0}
    splits, preprocess = data.load_or_make_splits, cache.preprocess_dataset

    def count_splits(*a, **k):
        calls["splits"] += 1
        return splits(*a, **k)

    def count_preprocess(*a, **k):
        calls["preprocess"] += 1
        return preprocess(*a, **k)

    monkeypatch.setattr(data, "load_or_make_splits", count_splits)
    monkeypatch.setattr(cache, "preprocess_dataset", count_preprocess)
    model = tmp_path / "model"
    args = ["auto", "run", str(root), "--out", str(model), "--raters", "--fuse", "vote",
            "--iterations", "2", "--threads", "1"]  # fmt: skip
    assert main(args) == 0
    assert calls == {"splits": 1, "preprocess": 1}
    report = json.loads((model / "report" / "report.json").read_text())
    assert report["raters"]["method"] == "vote"
    assert report["raters"] == json.loads((model / "raters.json").read_text())
    text = (model / "report" / "report.md").read_text()
    assert "## Raters" in text
    assert "| class | cases | pairwise Dice | a vs fused | b vs fused | c vs fused |" in text
    c1 = report["raters"]["per_class"]["1"]
    row = (
        f"| 1 disk | 4 | {c1['pairwise_dice']:.3f} | "
        + " | ".join(f"{c1['dice_vs_fused'][n]:.3f}" for n in "abc")
        + " |"
    )
    assert row in text
