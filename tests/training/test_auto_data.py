"""Splits, padded crops, patch sampling and batched augmentation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.errors import InputError
from medseg.training.augment import (
    AugmentConfig,
    extended_patch_size,
    intensity_augment,
    spatial_augment,
)
from medseg.training.cache import CachedCase
from medseg.training.data import (
    PatchSampler,
    crop_padded,
    load_or_make_splits,
    make_splits,
    select_fold,
    spread_subset,
)

NO_AUG = AugmentConfig(
    p_rotate=0, p_scale=0, p_mirror=0, p_noise=0, p_brightness=0, p_contrast=0, p_gamma=0
)


def test_make_splits_blocks_and_random() -> None:
    ids = [f"c{i}" for i in range(7)]
    blocks = make_splits(ids, 3, mode="blocks")
    assert [s["val"] for s in blocks] == [["c0", "c1"], ["c2", "c3", "c4"], ["c5", "c6"]]
    assert blocks[1]["train"] == ["c0", "c1", "c5", "c6"]
    rand = make_splits(ids, 5, seed=1)
    vals = sorted(c for s in rand for c in s["val"])
    assert vals == ids and len(rand) == 5
    assert make_splits(ids, 5, seed=1) == rand
    assert len(make_splits(ids[:3], 5)) == 3  # at most one fold per case
    with pytest.raises(InputError, match="at least 2 cases"):
        make_splits(["a"])
    with pytest.raises(InputError, match="split mode"):
        make_splits(ids, mode="odd")


def test_splits_file_and_fold_selection(tmp_path: Path) -> None:
    ids = ["a", "b", "c", "d"]
    splits = load_or_make_splits(tmp_path / "splits.json", ids)
    assert json.loads((tmp_path / "splits.json").read_text()) == splits
    train, val = select_fold(splits, 1, ids)
    assert sorted(train + val) == ids and not set(train) & set(val)
    assert select_fold(splits, "all", ids) == (ids, ids)
    with pytest.raises(InputError, match=r"fold must be 'all' or 0\.\.3"):
        select_fold(splits, 4, ids)
    with pytest.raises(InputError, match="names cases not in the dataset"):
        load_or_make_splits(tmp_path / "splits.json", ["a", "b"])


def test_spread_subset() -> None:
    ids = [f"c{i}" for i in range(10)]
    assert spread_subset(ids, 4) == ["c0", "c3", "c6", "c9"]
    assert spread_subset(ids, 1) == ["c0"]
    assert spread_subset(ids[:3], 4) == ids[:3]
    with pytest.raises(InputError, match=">= 1"):
        spread_subset(ids, 0)


def test_crop_padded_exact() -> None:
    a = np.arange(1, 13).reshape(1, 3, 4)
    out = crop_padded(a, (-1, 2), (3, 3))
    assert out.tolist() == [[[0, 0, 0], [3, 4, 0], [7, 8, 0]]]
    assert crop_padded(a, (5, 5), (2, 2)).tolist() == [[[0, 0], [0, 0]]]
    assert crop_padded(a[0], (0, 0), (3, 4)).tolist() == a[0].tolist()


def _case() -> CachedCase:
    seg = np.zeros((20, 20), np.uint8)
    seg[15, 3] = 1
    data = np.arange(400, dtype=np.float32).reshape(1, 20, 20)
    return CachedCase("c", data, seg, {1: np.array([[15, 3]], np.int32)})


def test_patch_sampler_forces_foreground() -> None:
    sampler = PatchSampler([_case()], (5, 5), 0.5, np.random.default_rng(0))
    img, lab = sampler.sample(4)
    assert img.shape == (4, 1, 5, 5) and lab.shape == (4, 1, 5, 5) and lab.dtype == np.int64
    for i in (2, 3):  # the last half of the batch is centred on the foreground voxel
        assert lab[i, 0, 2, 2] == 1 and img[i, 0, 2, 2] == 15 * 20 + 3
    with pytest.raises(InputError, match="no cases"):
        PatchSampler([], (5, 5), 0.3, np.random.default_rng(0))


def test_extended_patch_size() -> None:
    cfg = AugmentConfig(max_rotation_deg=30)
    ext = extended_patch_size((1, 40, 33), cfg)
    assert ext[0] == 1
    assert all(e >= p * 1.366 and (e - p) % 2 == 0 for e, p in zip(ext[1:], (40, 33), strict=True))
    assert extended_patch_size((40, 33), NO_AUG) == (40, 33)


def test_spatial_augment_without_transforms_is_centre_crop() -> None:
    x = torch.arange(2 * 10 * 12, dtype=torch.float32).reshape(2, 1, 10, 12)
    y = (x > 100).long()
    xo, yo = spatial_augment(x, y, (6, 8), NO_AUG, torch.Generator().manual_seed(0))
    assert torch.equal(xo, x[:, :, 2:8, 2:10]) and torch.equal(yo, y[:, :, 2:8, 2:10])


def test_spatial_augment_mirror_and_rotation() -> None:
    x = torch.arange(36, dtype=torch.float32).reshape(1, 1, 6, 6)
    y = torch.arange(36).reshape(1, 1, 6, 6) % 3
    mirror = AugmentConfig(p_rotate=0, p_scale=0, p_mirror=1.0)
    xo, yo = spatial_augment(x, y, (6, 6), mirror, torch.Generator().manual_seed(0))
    assert torch.equal(xo, x.flip([2, 3])) and torch.equal(yo, y.flip([2, 3]))


def test_spatial_augment_exact_rotation_and_unit_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    import medseg.training.augment as aug

    x = torch.arange(36, dtype=torch.float32).reshape(1, 1, 6, 6)
    y = torch.arange(36).reshape(1, 1, 6, 6) % 3
    unit = AugmentConfig(p_rotate=0, p_scale=1.0, scale_range=(1.0, 1.0), p_mirror=0)
    xo, yo = spatial_augment(x, y, (6, 6), unit, torch.Generator().manual_seed(0))
    assert torch.allclose(xo, x, atol=1e-4) and torch.equal(yo, y)
    # force an angle of exactly +90 degrees: output[r, c] = input[n-1-c, r]
    monkeypatch.setattr(aug, "_uniform", lambda lo, hi, g, n=1: torch.full((n,), hi))
    rot = AugmentConfig(p_rotate=1.0, max_rotation_deg=90, p_scale=0, p_mirror=0)
    xo, yo = spatial_augment(x, y, (6, 6), rot, torch.Generator().manual_seed(0))
    assert torch.allclose(xo, torch.rot90(x, -1, dims=(2, 3)), atol=1e-4)
    assert torch.equal(yo, torch.rot90(y, -1, dims=(2, 3)))


def test_spatial_augment_3d_shapes() -> None:
    cfg = AugmentConfig(p_rotate=1.0, p_scale=1.0)
    x, y = torch.rand(2, 2, 12, 14, 16), torch.randint(0, 3, (2, 1, 12, 14, 16))
    xo, yo = spatial_augment(x, y, (8, 10, 12), cfg, torch.Generator().manual_seed(0))
    assert xo.shape == (2, 2, 8, 10, 12) and yo.shape == (2, 1, 8, 10, 12)
    assert set(yo.unique().tolist()) <= {0, 1, 2}


def test_intensity_augment() -> None:
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(intensity_augment(x, NO_AUG, torch.Generator()), x)
    bright = AugmentConfig(
        p_noise=0, p_brightness=1.0, brightness_range=(2.0, 2.0), p_contrast=0, p_gamma=0
    )
    assert torch.allclose(intensity_augment(x, bright, torch.Generator()), 2 * x)
