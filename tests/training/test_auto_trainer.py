"""Trainer: fixed iterations, time budget, checkpoints and exact resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from medseg.automatic.plan import PlanBudget
from medseg.data.nnunet import read_dataset
from medseg.errors import InputError
from medseg.training.cache import preprocess_dataset
from medseg.training.fingerprint import compute_fingerprint
from medseg.training.planning import plan_experiment
from medseg.training.synthetic import write_disk_dataset
from medseg.training.trainer import TrainConfig, Trainer

TRAIN = ["case00", "case01", "case02", "case03"]
VAL = ["case04", "case05"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    root = write_disk_dataset(tmp_path_factory.mktemp("data") / "ds", 6, (32, 32))
    ds = read_dataset(root)
    plan = plan_experiment(compute_fingerprint(ds), PlanBudget(time_budget_s=60))
    plan = replace(plan, batch_size=2)
    cache = preprocess_dataset(ds, plan, tmp_path_factory.mktemp("cache"))
    return plan, cache


def _trainer(setup, out: Path, **cfg) -> Trainer:
    plan, cache = setup
    config = TrainConfig(target_epochs=3, val_patches=2, timing_iterations=2, **cfg)
    return Trainer(plan, cache, out, TRAIN, VAL, config)


def test_fixed_iterations_writes_checkpoints_and_log(setup, tmp_path: Path) -> None:
    result = _trainer(setup, tmp_path, iterations=6).train()
    assert result.finished and result.iterations == 6 and result.total_iterations == 6
    assert len(result.history) >= 1 and result.history[-1]["iteration"] == 6
    assert result.history[-1]["lr"] == 0.0  # poly schedule ends at zero
    for name in (
        "checkpoint_final.pt",
        "checkpoint_latest.pt",
        "checkpoint_best.pt",
        "training_log.json",
        "training_curve.png",
        "train_config.json",
    ):
        assert (tmp_path / name).is_file(), name
    state = torch.load(tmp_path / "checkpoint_final.pt", weights_only=False)
    assert state["iteration"] == 6 and state["plan"] == setup[0].to_dict()
    best = torch.load(tmp_path / "checkpoint_best.pt", weights_only=False)
    assert "optimizer" not in best and 1 <= best["iteration"] <= 6  # weights of the best epoch
    assert best["best_ema"] == max(h["ema_pseudo_dice"] for h in result.history)


def test_resume_continues_exactly(setup, tmp_path: Path) -> None:
    """Train 6 iterations in one go, or 3 + stop + resume 3: identical weights."""
    full = _trainer(setup, tmp_path / "full", iterations=6)
    full.train()
    part = _trainer(setup, tmp_path / "part", iterations=6, stop_after=3)
    stopped = part.train()
    assert not stopped.finished and stopped.iterations == 3
    assert not (tmp_path / "part" / "checkpoint_final.pt").exists()
    saved = torch.load(tmp_path / "part" / "checkpoint_latest.pt", weights_only=False)
    assert saved["iteration"] == 3

    resumed = _trainer(setup, tmp_path / "part", iterations=6)
    resumed.load_checkpoint(tmp_path / "part" / "checkpoint_latest.pt")
    assert resumed.iteration == 3 and resumed.total == 6
    opt_state = resumed.optimizer.state_dict()["state"]
    for key, value in saved["optimizer"]["state"].items():  # momentum buffers restored
        assert torch.equal(opt_state[key]["momentum_buffer"], value["momentum_buffer"])
    result = _trainer(setup, tmp_path / "part", iterations=6).train(resume=True)
    assert result.finished and result.iterations == 6
    final = torch.load(tmp_path / "part" / "checkpoint_final.pt", weights_only=False)
    reference = full.model.state_dict()
    assert reference.keys() == final["model"].keys()
    for key, value in final["model"].items():
        assert torch.allclose(reference[key], value, atol=1e-6), key


@pytest.mark.slow
def test_time_budget_is_respected(setup, tmp_path: Path) -> None:
    result = _trainer(setup, tmp_path, time_budget_s=3.0).train()
    assert result.finished
    assert result.iterations > 3
    assert result.elapsed_s <= 3.0 * 1.5
    assert result.history[-1]["lr"] == 0.0


def test_bad_config_and_missing_checkpoint(setup, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="either a time budget or a number of iterations"):
        TrainConfig()
    with pytest.raises(InputError, match="either a time budget"):
        TrainConfig(time_budget_s=10, iterations=5)
    with pytest.raises(InputError, match="iterations must be >= 1"):
        TrainConfig(iterations=0)
    with pytest.raises(InputError, match="no checkpoint to resume from"):
        _trainer(setup, tmp_path, iterations=2).train(resume=True)
