"""Training with partially labelled cases (marginal loss) end to end on tiny 2D disks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.io import load_label, save
from medseg.io.image import LabelMap
from medseg.training.cache import CachedCase
from medseg.training.data import PatchSampler
from medseg.training.synthetic import write_disk_dataset


def _two_class_dataset(root: Path, n: int = 4) -> Path:
    """Disks whose right half (x >= 16) is class 2 "half"; case01 annotates only "disk"."""
    write_disk_dataset(root, n, (32, 32))
    for f in sorted((root / "labelsTr").glob("*.png")):
        arr = load_label(f).array.astype(np.uint8)
        arr[:, 16:][arr[:, 16:] == 1] = 2
        if f.name == "case01.png":
            arr[arr == 2] = 0  # the "half" class is not annotated: it reads as background
        save(LabelMap(arr, spacing=(1.0, 1.0)), f)
    meta = json.loads((root / "dataset.json").read_text())
    meta["labels"] = {"background": 0, "disk": 1, "half": 2}
    meta["partial_labels"] = {"case01": ["disk"]}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_sampler_reports_annotated_classes_of_its_batch() -> None:
    seg = np.zeros((8, 8), np.int64)
    full = CachedCase("a", np.zeros((1, 8, 8), np.float32), seg, {1: np.zeros((0, 2))})
    part = CachedCase("b", full.data, seg, full.locations, np.array([True, False, True]))
    sampler = PatchSampler([full, part], (4, 4), 0.0, np.random.default_rng(0))
    sampler.sample(4)
    expected = np.array([[True, True, True] if i == 0 else [True, False, True]
                         for i in sampler.last_cases])  # fmt: skip
    np.testing.assert_array_equal(sampler.annotated(3), expected)
    assert sampler.partial and not PatchSampler([full], (4, 4), 0.0, sampler.rng).partial


@pytest.mark.slow
def test_auto_run_with_a_partial_case_uses_the_marginal_loss(tmp_path: Path) -> None:
    from medseg.training.run import RunOptions, run_auto
    from medseg.training.trainer import Trainer

    torch.set_num_threads(1)
    root = _two_class_dataset(tmp_path / "ds")
    calls: list[torch.Tensor] = []
    original = Trainer._loss

    def spy(self, outs, y, sampler):  # record the annotated masks the loss saw
        if self.partial:
            calls.append(torch.from_numpy(sampler.annotated(self.plan.num_classes)))
        return original(self, outs, y, sampler)

    Trainer._loss = spy
    try:
        opts = RunOptions(time_budget_s=None, iterations=3, fold="all", max_val_cases_all=4)
        report = run_auto(root, tmp_path / "model", opts)
    finally:
        Trainer._loss = original
    assert len(calls) >= 3 and all(c.shape[1] == 3 for c in calls)
    assert any(not bool(c[:, 1:].all()) for c in calls)  # a partial sample was trained on
    plans = json.loads((tmp_path / "model" / "plans.json").read_text())
    assert any(n.startswith("partial labels: 1 of 4 cases") for n in plans["notes"])
    assert "partial labels: 1 of 4 cases" in report.read_text()
    # full-image validation scores case01 on "disk" only: it does not annotate "half"
    info = json.loads((tmp_path / "model" / "report" / "report.json").read_text())
    assert sorted((r["case"], r["label"]) for r in info["cases"] if r["case"] == "case01") == [
        ("case01", 1)
    ]
    assert info["summary"]["per_class"]["1"]["n_cases"] == 4
    assert info["summary"]["per_class"]["2"]["n_cases"] == 3
    log = json.loads((tmp_path / "model" / "fold_all" / "training_log.json").read_text())
    assert all(np.isfinite(h["train_loss"]) for h in log)
