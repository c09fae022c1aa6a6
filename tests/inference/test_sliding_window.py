"""Sliding-window inference of ``medseg auto`` models: geometry, TTA, folders, sharding."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.automatic.model import AutoModel, PredictConfig, sliding_window_logits
from medseg.automatic.plan import PlanBudget, save_plan
from medseg.automatic.predict import find_cases, predict_folder
from medseg.data.nnunet import read_dataset
from medseg.errors import InputError, ModelError
from medseg.io import load_label, save
from medseg.io.image import Image
from medseg.training.cache import preprocess_dataset
from medseg.training.fingerprint import compute_fingerprint
from medseg.training.planning import plan_experiment
from medseg.training.synthetic import write_disk_dataset
from medseg.training.trainer import TrainConfig, Trainer


@pytest.mark.parametrize(
    ("shape", "patch"),
    [
        ((2, 37, 50), (16, 16)),
        ((2, 9, 20, 23), (8, 8, 8)),
        ((2, 5, 20, 23), (8, 8)),
        ((1, 5, 6), (16, 16)),
    ],
)
@pytest.mark.parametrize("tta", [False, True])
def test_identity_model_reproduces_input(shape, patch, tta) -> None:
    """2D, 3D, 2D slices of 3D, and an image smaller than the patch."""
    x = torch.rand(shape)
    out = sliding_window_logits(x, lambda t: t, patch, tta=tta, overlap=0.5)
    assert out.shape == x.shape
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


def test_mirroring_averages_flips() -> None:
    x = torch.arange(16, dtype=torch.float32).reshape(1, 4, 4)
    ramp = torch.arange(4, dtype=torch.float32)

    def add_ramp(t: torch.Tensor) -> torch.Tensor:  # not flip-equivariant along columns
        return t + ramp

    out = sliding_window_logits(x, add_ramp, (4, 4), tta=True)
    # flips are undone on the output: x is unchanged, the ramp averages with its mirror
    torch.testing.assert_close(out, x + 1.5)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3D model (spacing (4, 1, 1), 2D slice configuration) trained for 2 iterations."""
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("auto")
    root = write_disk_dataset(base / "ds", 4, (6, 24, 20), spacing=(4.0, 1.0, 1.0), n_test=2)
    ds = read_dataset(root)
    plan = plan_experiment(compute_fingerprint(ds), PlanBudget(time_budget_s=60))
    plan = replace(plan, target_spacing=(None, 0.5, 0.5), batch_size=2)  # resampled 2x
    model = base / "model"
    save_plan(plan, model / "plans.json")
    cache = preprocess_dataset(ds, plan, model / "preprocessed")
    cfg = TrainConfig(iterations=2, val_patches=2, timing_iterations=1)
    Trainer(plan, cache, model / "fold_0", ["case00", "case01"], ["case02"], cfg).train()
    return model


def _threshold_network(region: np.ndarray, level: float):
    """A stand-in network: class 1 where the input is above ``level`` (raw intensity).

    ``region`` is the array the plan's z-score normalisation sees (the non-zero box), so the
    threshold in normalised units is ``(level - mean) / std``; the logits of a batch
    ``(B, 1, *patch)`` are ``(B, 2, *patch)``: 0 for background, ``x - t`` for class 1.
    """
    t = float((level - region.mean()) / region.std())
    return lambda x: torch.cat([torch.zeros_like(x[:, :1]), x[:, :1] - t], dim=1)


def test_prediction_has_input_geometry(model_dir: Path) -> None:
    """A bright box in a rotated, anisotropic volume comes back exactly where it is, through
    cropping, transposing, 2x resampling, sliding windows and resampling back."""
    model = AutoModel(model_dir)
    assert model.plan.configuration == "2d" and model.folds == ["0"]
    direction = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    arr = 0.1 * np.random.default_rng(0).normal(size=(7, 25, 19)).astype(np.float32)
    box = np.zeros(arr.shape, bool)
    box[2:5, 6:17, 4:11] = True
    arr[box] += 10.0
    image = Image(arr, spacing=(2.5, 1.1, 0.9), origin=(10.0, -5.0, 3.0), direction=direction)
    model.networks = [_threshold_network(arr, 5.0)]
    pred = model.predict(image)
    assert pred.shape == image.shape and pred.array.dtype == np.uint8
    assert pred.same_geometry(image)
    np.testing.assert_array_equal(pred.array, box.astype(np.uint8))
    with pytest.raises(InputError, match="expects 1 channel"):
        model.predict(Image(np.zeros((7, 25, 19, 2), np.float32), channels=True))
    with pytest.raises(InputError, match="planned for 3D images, got 2D"):
        model.predict(Image(np.zeros((25, 19), np.float32)))


def test_zero_border_is_background_and_tta_runs(model_dir: Path) -> None:
    """Cropped to the non-zero box and pasted back; with TTA and post-processing the bright
    block is found and the small bright island (another component) is removed."""
    model = AutoModel(model_dir, PredictConfig(tta=True, postprocess="on"))
    arr = np.zeros((6, 24, 20), np.float32)
    arr[2:4, 5:15, 5:12] = 1.0 + 0.1 * np.random.default_rng(1).normal(size=(2, 10, 7))
    arr[2:4, 7:12, 6:10] += 4.0  # the object
    arr[2:3, 13:15, 10:12] += 4.0  # a 4-voxel island
    model.networks = [_threshold_network(arr[2:4, 5:15, 5:12], 3.0)]
    pred = model.predict(Image(arr, spacing=(4.0, 1.0, 1.0)))
    expected = np.zeros(arr.shape, np.uint8)
    expected[2:4, 7:12, 6:10] = 1
    np.testing.assert_array_equal(pred.array, expected)
    model.postprocess = []  # without post-processing the island stays
    assert int(model.predict(Image(arr, spacing=(4.0, 1.0, 1.0))).array.sum()) == 40 + 4


def test_predict_folder_names_and_shards(model_dir: Path, tmp_path: Path) -> None:
    data = Path(read_dataset(model_dir.parent / "ds").root)
    cases = find_cases(data / "imagesTs")
    assert sorted(cases) == ["case04", "case05"]
    model = AutoModel(model_dir, PredictConfig(folds=("0",), checkpoint="best"))
    first = predict_folder(model, data / "imagesTs", tmp_path, num_parts=2, part_id=0)
    second = predict_folder(model, data / "imagesTs", tmp_path, num_parts=2, part_id=1)
    assert [p.name for p in first + second] == ["case04.nii.gz", "case05.nii.gz"]
    single = predict_folder(model, data / "imagesTs" / "case05_0000.nii.gz", tmp_path / "one")
    assert [p.name for p in single] == ["case05.nii.gz"]
    assert np.array_equal(load_label(single[0]).array, load_label(second[0]).array)
    with pytest.raises(InputError, match="part_id < num_parts"):
        predict_folder(model, data / "imagesTs", tmp_path, num_parts=2, part_id=2)


def test_find_cases_groups_channels(tmp_path: Path) -> None:
    for name in ("a_0000.nii.gz", "a_0001.nii.gz", "b.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    cases = find_cases(tmp_path)
    assert {k: [p.name for p in v] for k, v in cases.items()} == {
        "a": ["a_0000.nii.gz", "a_0001.nii.gz"],
        "b": ["b.png"],
    }
    assert [p.name for p in find_cases(tmp_path / "a_0000.nii.gz")["a"]] == [
        "a_0000.nii.gz",
        "a_0001.nii.gz",
    ]
    (tmp_path / "c_0001.png").write_bytes(b"x")
    with pytest.raises(InputError, match="case c has channel files"):
        find_cases(tmp_path)
    with pytest.raises(InputError, match="no such file or folder"):
        find_cases(tmp_path / "missing")


def test_model_and_config_errors(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="missing checkpoint"):
        AutoModel(model_dir, PredictConfig(folds=("3",)))
    save_plan(AutoModel(model_dir).plan, tmp_path / "plans.json")
    with pytest.raises(ModelError, match="no fold_"):
        AutoModel(tmp_path)
    with pytest.raises(InputError, match="overlap"):
        PredictConfig(overlap=1.0)
    with pytest.raises(InputError, match="checkpoint must be"):
        PredictConfig(checkpoint="newest")


def test_predicted_file_round_trips(model_dir: Path, tmp_path: Path) -> None:
    image = Image(np.ones((6, 24, 20), np.float32), spacing=(3.0, 1.0, 1.0), origin=(1, 2, 3))
    save(image, tmp_path / "in" / "x_0000.nii.gz")
    out = predict_folder(AutoModel(model_dir), tmp_path / "in", tmp_path / "out")
    lab = load_label(out[0])
    assert lab.shape == (6, 24, 20) and lab.spacing == (3.0, 1.0, 1.0)
    assert lab.origin == pytest.approx((1.0, 2.0, 3.0))
