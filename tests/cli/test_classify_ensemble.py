"""``medseg classify train --ensemble A,B``, then ``predict`` / ``evaluate`` on the folder."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from medseg.cli.commands import classify as cmd
from medseg.cli.main import main


def test_member_list_parsing() -> None:
    assert cmd._member_list("efficientnet-lite0, tinyvit,baseline") == (
        "efficientnet-lite0",
        "tinyvit",
        "baseline",
    )
    for bad in ("resnet18", "resnet18,vgg", "auto,resnet18", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="two or more comma-separated"):
            cmd._member_list(bad)


def _npz3d(path: Path) -> Path:
    """Tiny AdrenalMNIST3D-like file: ``(n, 8, 8, 8)`` uint8, label 1 has a bright cube."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 8), ("val", 6), ("test", 6)):
        labels = np.arange(n) % 2
        vol = rng.integers(0, 80, (n, 8, 8, 8)).astype(np.uint8)
        vol[labels == 1, 2:6, 2:6, 2:6] = 230
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = vol, labels[:, None]
    np.savez(path, **arrays)
    return path


@pytest.mark.slow
def test_train_predict_evaluate_an_ensemble(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _npz3d(tmp_path / "tiny3d.npz")
    out = tmp_path / "ens"
    args = ["classify", "train", str(data), "--out", str(out), "--ensemble", "cnn3d,cnn3d"]
    args += ["--epochs", "1", "--batch-size", "4", "--threads", "1", "--no-progress"]
    assert main(args) == 0
    config = json.loads((out / "classifier.json").read_text())
    assert (config["model"], config["members"]) == (
        "ensemble",
        ["members/0-cnn3d", "members/1-cnn3d"],
    )
    assert json.loads((out / "report.json").read_text())["options"]["ensemble"] == [
        "cnn3d",
        "cnn3d",
    ]
    metrics = tmp_path / "m.json"
    assert main(["classify", "evaluate", str(out), str(data), "--json", str(metrics)]) == 0
    rep = json.loads(metrics.read_text())
    assert rep["model"] == "ensemble" and 0.0 <= rep["auc"] <= 1.0
    vol = tmp_path / "one.npy"
    np.save(vol, np.load(data)["test_images"][0].astype(np.float32) / 255.0)
    assert main(["classify", "predict", str(out), str(vol), "--csv", str(tmp_path / "p.csv")]) == 0
    with open(tmp_path / "p.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["path"] for r in rows] == [str(vol)]
    assert abs(float(rows[0]["p_0"]) + float(rows[0]["p_1"]) - 1.0) < 1e-5
