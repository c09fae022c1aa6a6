"""MedMNIST-C style corruptions: exact values on constant and patterned images."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.classify.corrupt import CORRUPTIONS, SEVERITIES, corrupt, corrupt_batch
from medseg.errors import InputError


def test_brightness_and_contrast_exact() -> None:
    x = np.zeros((1, 4, 4), np.float32)
    np.testing.assert_allclose(corrupt(x, "brightness", 1), 0.1, atol=1e-7)
    np.testing.assert_array_equal(corrupt(x + 0.95, "brightness", 2), 1.0)  # clipped
    half = np.zeros((1, 2, 2), np.float32)
    half[0, 0] = 1.0  # mean 0.5; severity 5 keeps 0.2 of the contrast
    np.testing.assert_allclose(corrupt(half, "contrast", 5)[0], [[0.6, 0.6], [0.4, 0.4]], atol=1e-6)


def test_gaussian_noise_is_seeded_normal() -> None:
    x = np.full((1, 16, 16), 0.5, np.float32)
    out = corrupt(x, "gaussian_noise", 3, np.random.default_rng(7))
    want = np.clip(0.5 + np.random.default_rng(7).normal(0, 0.08, x.shape), 0, 1)
    np.testing.assert_allclose(out, want, atol=1e-6)


def test_blur_keeps_constant_and_mass() -> None:
    const = np.full((2, 28, 28), 0.3, np.float32)
    np.testing.assert_allclose(corrupt(const, "gaussian_blur", 5), 0.3, atol=1e-6)
    delta = np.zeros((1, 28, 28), np.float32)
    delta[0, 14, 14] = 1.0
    out = corrupt(delta, "gaussian_blur", 3)
    assert out.sum() == pytest.approx(1.0, abs=1e-5)
    assert out[0, 14, 14] < 0.2
    assert out[0, 14, 15] == pytest.approx(out[0, 15, 14])


def test_pixelate_checkerboard_averages_to_half() -> None:
    board = (np.indices((28, 28)).sum(0) % 2).astype(np.float32)[None]
    np.testing.assert_allclose(corrupt(board, "pixelate", 5), 0.5, atol=1e-6)  # 28 -> 14 px
    vol = np.zeros((1, 4, 4, 4), np.float32)
    vol[0, :2] = 1.0
    np.testing.assert_array_equal(corrupt(vol, "pixelate", 5), vol)  # 2x2x2 blocks are uniform


def test_jpeg_constant_is_exact_and_noise_changes() -> None:
    gray = np.full((1, 16, 16), 128 / 255, np.float32)
    np.testing.assert_allclose(corrupt(gray, "jpeg", 5), gray, atol=1e-6)
    rgb = np.random.default_rng(0).random((3, 16, 16)).astype(np.float32)
    assert np.abs(corrupt(rgb, "jpeg", 5) - rgb).mean() > 0.05
    vol = np.random.default_rng(0).random((1, 3, 8, 8)).astype(np.float32)
    assert corrupt(vol, "jpeg", 1).shape == (1, 3, 8, 8)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_every_corruption_2d_3d_shape_range_and_severity_order(name: str) -> None:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(1)
    for shape in ((3, 28, 28), (1, 12, 12, 12)):
        # textured but smooth: pixelation of pure noise is not monotone in the factor
        x = gaussian_filter(rng.random(shape), (0,) + (1.0,) * (len(shape) - 1))
        x = (0.1 + 0.8 * (x - x.min()) / (x.max() - x.min())).astype(np.float32)
        diffs = []
        for s in SEVERITIES:
            y = corrupt(x, name, s, np.random.default_rng(0))
            assert y.shape == x.shape and y.dtype == np.float32
            assert y.min() >= 0.0 and y.max() <= 1.0
            diffs.append(float(np.abs(y - x).mean()))
        if name != "pixelate":  # its error is not monotone (2x blocks align); see below
            assert diffs[0] < diffs[-1]  # severity 5 changes the image more than severity 1


def test_pixelate_resolution_per_severity() -> None:
    x = np.random.default_rng(0).random((1, 28, 28)).astype(np.float32)
    distinct = []
    for s in SEVERITIES:
        y = corrupt(x, "pixelate", s)[0]
        distinct.append(1 + int((np.abs(np.diff(y, axis=1)).max(0) > 0).sum()))
    assert distinct == [25, 22, 20, 17, 14]  # round(28 * (0.9, 0.8, 0.7, 0.6, 0.5))


def test_bad_names_severities_shapes() -> None:
    x = np.zeros((1, 4, 4), np.float32)
    with pytest.raises(InputError, match="unknown corruption"):
        corrupt(x, "fog", 1)
    with pytest.raises(InputError, match=r"severity must be 1\.\.5"):
        corrupt(x, "brightness", 6)
    with pytest.raises(InputError, match="expected"):
        corrupt(np.zeros((4, 4)), "brightness", 1)


def test_corrupt_batch_is_reproducible() -> None:
    x = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)
    a = corrupt_batch(x, "gaussian_noise", 2, seed=5)
    np.testing.assert_array_equal(a, corrupt_batch(x, "gaussian_noise", 2, seed=5))
    assert not np.allclose(a[0] - x[0], a[1] - x[1])  # a fresh noise draw per image
