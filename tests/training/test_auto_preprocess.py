"""Normalisation, resampling, label mapping and the preprocessing cache."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from medseg.automatic.plan import Normalization, PlanBudget
from medseg.automatic.preprocess import (
    nonzero_bbox,
    normalize,
    preprocess_image,
    preprocess_label,
    resize,
    resize_argmax,
)
from medseg.data.nnunet import read_dataset
from medseg.errors import InputError
from medseg.io.image import Image, LabelMap
from medseg.training.cache import (
    class_locations,
    load_preprocessed,
    plan_cache_key,
    preprocess_dataset,
)
from medseg.training.fingerprint import compute_fingerprint
from medseg.training.planning import plan_experiment
from medseg.training.synthetic import write_disk_dataset


def test_normalize_schemes_exact() -> None:
    data = np.array(
        [[[0.0, 2.0], [4.0, 6.0]], [[-200.0, 0.0], [100.0, 500.0]], [[0.0, 255.0], [51.0, 0.0]]]
    )
    norms = [
        Normalization("zscore"),
        Normalization("ct", mean=100.0, std=50.0, lower=-100.0, upper=300.0),
        Normalization("rgb_to_0_1"),
    ]
    out = normalize(data, norms, None)
    std = np.std([0, 2, 4, 6])
    np.testing.assert_allclose(out[0], (data[0] - 3.0) / std, rtol=1e-6)
    np.testing.assert_allclose(out[1], [[-4.0, -2.0], [0.0, 4.0]])  # clipped to -100..300
    np.testing.assert_allclose(out[2], [[0.0, 1.0], [0.2, 0.0]])
    assert out.dtype == np.float32


def test_normalize_with_nonzero_mask() -> None:
    data = np.array([[[0.0, 2.0], [4.0, 0.0]]])
    mask = data[0] != 0
    out = normalize(data, [Normalization("zscore")], mask)
    np.testing.assert_allclose(out[0], [[0.0, -1.0], [1.0, 0.0]])


def test_normalize_rejects_wrong_channels_and_scheme() -> None:
    with pytest.raises(InputError, match="the plan has 2 channels, the image 1"):
        normalize(np.zeros((1, 2, 2)), [Normalization("none")] * 2, None)
    with pytest.raises(InputError, match="unknown normalisation scheme"):
        normalize(np.zeros((1, 2, 2)), [Normalization("magic")], None)


def test_resize_identity_and_inverse_grid() -> None:
    a = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    assert np.array_equal(resize(a, (3, 4)), a)
    up = resize(a, (6, 8))
    assert up.shape == (1, 6, 8)
    # area-aligned linear 2x up then 2x down returns the original values away from the border
    back = resize(up, (3, 4))
    np.testing.assert_allclose(back[:, 1:-1, 1:-1], a[:, 1:-1, 1:-1], atol=1e-5)


def test_resize_argmax_keeps_labels() -> None:
    seg = np.zeros((4, 4), np.uint8)
    seg[:2, :2] = 1
    seg[2:, 2:] = 2
    out = resize_argmax(lambda k: (seg == k).astype(np.float32), 3, (8, 8))
    expected = np.repeat(np.repeat(seg, 2, axis=0), 2, axis=1)
    assert np.array_equal(out, expected)


def test_nonzero_bbox() -> None:
    arr = np.zeros((5, 6, 1))
    arr[1:3, 2:5, 0] = 1
    assert nonzero_bbox(arr) == (slice(1, 3), slice(2, 5))
    assert nonzero_bbox(np.zeros((2, 3, 1))) == (slice(0, 2), slice(0, 3))


@pytest.fixture()
def aniso_plan(tmp_path: Path):
    root = write_disk_dataset(tmp_path / "ds", 2, (4, 12, 10), spacing=(1.0, 1.0, 2.0))
    ds = read_dataset(root)
    return ds, plan_experiment(compute_fingerprint(ds), PlanBudget(configuration="3d"))


def test_preprocess_image_crops_transposes_resamples(aniso_plan) -> None:
    _, plan = aniso_plan
    assert plan.transpose == (2, 0, 1) and plan.target_spacing == (2.0, 1.0, 1.0)
    arr = np.zeros((4, 12, 10), np.float32)
    arr[1:3, 2:10, 3:7] = np.arange(1, 65).reshape(2, 8, 4)
    image = Image(arr, spacing=(1.0, 1.0, 2.0))
    data, geom = preprocess_image(image, replace(plan, target_spacing=(2.0, 0.5, 1.0)))
    assert geom.bbox == ((1, 3), (2, 10), (3, 7))
    assert geom.cropped_shape == (2, 8, 4)
    # transposed cropped shape (4, 2, 8); spacing (2, 1, 1) -> target (2, 0.5, 1)
    assert geom.resampled_shape == (4, 4, 8) and data.shape == (1, 4, 4, 8)
    label = LabelMap((arr > 32).astype(np.uint8), spacing=(1.0, 1.0, 2.0))
    seg = preprocess_label(label, geom, replace(plan, target_spacing=(2.0, 0.5, 1.0)))
    assert seg.shape == (4, 4, 8) and set(np.unique(seg)) == {0, 1}


def test_preprocess_label_maps_values_to_indices(aniso_plan) -> None:
    _, plan = aniso_plan
    plan = replace(plan, label_values=(0, 2, 5), target_spacing=(2.0, 1.0, 1.0))
    lab = np.zeros((4, 12, 10), np.uint8)
    lab[0, 0, 0], lab[3, 11, 9], lab[2, 5, 5] = 5, 2, 5
    image = Image(np.ones((4, 12, 10), np.float32), spacing=(1.0, 1.0, 2.0))
    _, geom = preprocess_image(image, plan)
    seg = preprocess_label(LabelMap(lab, spacing=(1.0, 1.0, 2.0)), geom, plan)
    assert np.array_equal(seg, np.array([0, 0, 1, 0, 0, 2])[lab].transpose(2, 0, 1))
    lab[1, 1, 1] = 3
    with pytest.raises(InputError, match=r"label values \[3\] are not in the plan"):
        preprocess_label(LabelMap(lab), geom, plan)


def test_class_locations() -> None:
    seg = np.zeros((4, 5), np.uint8)
    seg[1, 2] = seg[3, 4] = 1
    locs = class_locations(seg, 3, np.random.default_rng(0))
    assert locs[1].tolist() == [[1, 2], [3, 4]]
    assert locs[2].shape == (0, 2)
    big = class_locations(np.ones((50, 50), np.uint8), 2, np.random.default_rng(0), max_per_class=7)
    assert big[1].shape == (7, 2)


def test_preprocess_dataset_cache(aniso_plan, tmp_path: Path) -> None:
    ds, plan = aniso_plan
    cache = preprocess_dataset(ds, plan, tmp_path / "cache")
    case = load_preprocessed(cache, "case00")
    assert case.data.shape[0] == 1 and case.data.shape[1:] == case.seg.shape
    assert case.data.dtype == np.float32 and isinstance(case.data, np.memmap)
    assert len(case.locations[1]) == int((case.seg == 1).sum())
    stamp = (cache / "case00.npy").stat().st_mtime_ns
    preprocess_dataset(ds, plan, cache)  # cached: not rewritten
    assert (cache / "case00.npy").stat().st_mtime_ns == stamp
    other = replace(plan, use_nonzero_mask=not plan.use_nonzero_mask)
    assert plan_cache_key(other) != plan_cache_key(plan)
    preprocess_dataset(ds, other, cache)  # plan changed: rebuilt
    assert (cache / "plan_key.txt").read_text().strip() == plan_cache_key(other)
    with pytest.raises(InputError, match="is not preprocessed"):
        load_preprocessed(cache, "nope")
