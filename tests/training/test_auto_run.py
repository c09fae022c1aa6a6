"""End to end through the CLI: ``medseg auto check/plan/run/predict`` on synthetic disks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.cli.arguments import parse_duration
from medseg.cli.commands.auto import parse_fold
from medseg.cli.main import main
from medseg.io import load, load_label
from medseg.training.synthetic import write_disk_dataset


def test_parse_duration_and_fold() -> None:
    assert parse_duration("30m") == 1800 and parse_duration("1h30m") == 5400
    assert (
        parse_duration("90s") == 90 and parse_duration("45") == 45 and parse_duration("1.5m") == 90
    )
    for bad in ("", "abc", "0", "5x"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_duration(bad)
    assert parse_fold("all") == "all" and parse_fold("3") == 3
    with pytest.raises(argparse.ArgumentTypeError):
        parse_fold("-1")


def test_check_cli_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = write_disk_dataset(tmp_path / "ds", 3, (16, 16))
    assert main(["auto", "check", str(root)]) == 0
    assert "3 training cases" in capsys.readouterr().out
    (root / "labelsTr" / "case01.png").unlink()
    assert main(["auto", "check", str(root)]) == 2
    out = capsys.readouterr().out
    assert "ERROR: case01: label file" in out and "1 error(s)" in out


@pytest.mark.slow
def test_auto_run_and_predict_on_disks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """6 images of bright disks: a few seconds of training reach a high validation Dice."""
    torch.manual_seed(0)
    root = write_disk_dataset(tmp_path / "ds", 6, (48, 48), n_test=2)
    model = tmp_path / "model"
    code = main(
        ["auto", "run", str(root), "--out", str(model), "--iterations", "80", "--threads", "1"]
    )
    assert code == 0
    report = json.loads((model / "report" / "report.json").read_text())
    assert report["train"]["iterations"] == 80 and report["train"]["n_val"] == 2
    dice = report["summary"]["per_class"]["1"]["dice"]["mean"]
    assert dice > 0.85, dice
    assert report["summary"]["per_class"]["1"]["hd95"]["mean"] < 5
    assert (model / "report" / "report.md").is_file()
    assert len(list((model / "report").glob("overlay_*.png"))) == 2
    assert (model / "fold_0" / "training_curve.png").is_file()
    assert (model / "postprocessing.json").is_file()
    assert "| 1 disk | 2 |" in (model / "report" / "report.md").read_text()
    capsys.readouterr()

    out = tmp_path / "pred"
    assert main(["auto", "predict", str(model), str(root / "imagesTs"), str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["case06.png", "case07.png"]
    for case in ("case06", "case07"):
        pred = load_label(out / f"{case}.png")
        image = load(root / "imagesTs" / f"{case}_0000.png")
        assert pred.shape == image.shape
        # the disk is the bright region: the prediction matches a threshold closely
        bright = image.array > 110
        inter = np.logical_and(pred.array > 0, bright).sum()
        assert 2 * inter / (pred.array.astype(bool).sum() + bright.sum()) > 0.85


def test_fold_all_validates_a_spread_subset(tmp_path: Path) -> None:
    """fold 'all' validates on training cases: only max_val_cases_all of them are predicted."""
    from medseg.training.run import RunOptions, run_auto

    root = write_disk_dataset(tmp_path / "ds", 6, (32, 32), n_test=0)
    opts = RunOptions(time_budget_s=None, iterations=4, fold="all", max_val_cases_all=2)
    run_auto(root, tmp_path / "model", opts)
    report = json.loads((tmp_path / "model" / "report" / "report.json").read_text())
    assert report["train"]["n_train"] == 6 and report["train"]["n_val"] == 2
    assert sorted(c["case"] for c in report["cases"]) == ["case00", "case05"]
    assert any("on 2 training case(s)" in w for w in report["warnings"])


def test_plan_cli_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = write_disk_dataset(tmp_path / "ds", 3, (16, 16))
    assert (
        main(
            [
                "auto",
                "plan",
                str(root),
                "--out",
                str(tmp_path / "m"),
                "--time-budget",
                "2m",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    plans = json.loads((tmp_path / "m" / "plans.json").read_text())
    assert plans["configuration"] == "2d" and plans["budget"]["time_budget_s"] == 120
    assert "configuration 2d" in capsys.readouterr().out
    assert main(["auto", "predict", str(tmp_path / "m"), str(root), str(tmp_path / "o")]) == 2
    assert (
        main(
            [
                "auto",
                "train",
                str(root),
                "--out",
                str(tmp_path / "m"),
                "--iterations",
                "2",
                "--resume",
            ]
        )
        == 2
    )
