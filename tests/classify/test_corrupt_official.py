"""Official MedMNIST-C families and per-dataset tables: exact values on hand-built arrays."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from medseg.classify import corrupt_official as co
from medseg.classify.corrupt import CORRUPTIONS, corrupt, corrupt_batch, corruption_names
from medseg.classify.corrupt_sets import OFFICIAL_SETS, official_set_name
from medseg.errors import InputError

RETINA = (
    "pixelate",
    "jpeg_compression",
    "gaussian_noise",
    "speckle_noise",
    "defocus_blur",
    "motion_blur",
    "brightness_down",
    "contrast_down",
)


def _rgb(value: int, h: int = 2, w: int = 2) -> np.ndarray:
    return np.full((1, h, w, 3), value, np.uint8)


def test_defocus_of_a_point_is_a_disk_of_radius_4() -> None:
    delta = np.zeros((1, 28, 28, 3), np.uint8)
    delta[0, 14, 14] = 255
    out = co.defocus_blur(delta, (4, 0.1), None)[0, ..., 0]
    yy, xx = np.indices((28, 28))
    disk = (yy - 14) ** 2 + (xx - 14) ** 2 <= 16  # 49 pixels; alias sigma 0.1 ~ no smoothing
    np.testing.assert_array_equal(out, np.where(disk, 5, 0))  # int(255 / 49) = 5


def test_motion_blur_is_a_one_sided_streak() -> None:
    delta = np.zeros((1, 5, 7, 1), np.uint8)
    delta[0, 2, 4] = 255
    # weights exp(-i^2 / 2) / sum = 0.574, 0.348, 0.078 for i = 0, 1, 2; 16-bit rounding
    np.testing.assert_allclose(co.motion_kernel(1, 1), [0.574097, 0.348207, 0.077696], atol=1e-6)
    along_x = co.motion_blur_at(delta, 1, 1, angle=0)[0, ..., 0]
    want = np.zeros((5, 7), np.uint8)
    want[2, 2:5] = [19, 88, 146]
    np.testing.assert_array_equal(along_x, want)
    along_y = co.motion_blur_at(delta, 1, 1, angle=90)[0, ..., 0]
    want_y = np.zeros((5, 7), np.uint8)
    want_y[0:3, 4] = [19, 88, 146]
    np.testing.assert_array_equal(along_y, want_y)
    assert co.motion_kernel(15, 8).shape == (31,)  # 2 * ceil(radius) + 1 taps


@pytest.mark.slow  # importing torchvision takes seconds on a loaded machine
def test_gaussian_blur_matches_torchvision() -> None:
    import torch
    from torchvision.transforms.functional import gaussian_blur

    img = np.random.default_rng(0).integers(0, 256, (1, 20, 20, 3), dtype=np.uint8)
    want = gaussian_blur(torch.from_numpy(img[0]).permute(2, 0, 1), kernel_size=7)
    got = co.gaussian_blur(img, 7, None)[0]
    diff = np.abs(got.astype(int) - want.permute(1, 2, 0).numpy().astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99  # float32 sums in another order


def test_enhance_families_exact() -> None:
    lut_in = np.array([[[[128, 255, 0]]]], np.uint8)
    np.testing.assert_array_equal(co.gamma(lut_in, 2.0, None), [[[[64, 255, 0]]]])
    np.testing.assert_array_equal(co.brightness(_rgb(100), 0.7, None), 70)
    np.testing.assert_array_equal(co.brightness(_rgb(200), 1.4, None), 255)  # clipped
    half = np.zeros((1, 2, 2, 3), np.uint8)
    half[0, 0] = 255  # grey mean int(127.5 + 0.5) = 128; 128 + 0.5 (v - 128), truncated
    np.testing.assert_array_equal(co.contrast(half, 0.5, None)[0, ..., 0], [[191, 191], [64, 64]])
    np.testing.assert_array_equal(co.saturate(_rgb(200, 1, 1), 0.1, None), [[[[200, 180, 180]]]])


def test_pixelate_jpeg_zoom_exact() -> None:
    board = (np.indices((28, 28)).sum(0) % 2 * 255).astype(np.uint8)
    board = np.repeat(board[None, ..., None], 3, -1)
    np.testing.assert_array_equal(co.pixelate(board, 0.5, None), 128)  # 2x2 boxes: 127.5
    np.testing.assert_array_equal(co.jpeg_compression(_rgb(128, 16, 16), 5, None), 128)
    np.testing.assert_array_equal(
        co.zoom_blur(_rgb(255, 8, 8), np.arange(1, 1.11, 0.01), None), 255
    )


def test_noise_families_shape_range_statistics() -> None:
    x = np.full((3, 64, 64), 0.5, np.float32)
    for name, dataset in (
        ("gaussian_noise", "retinamnist"),
        ("speckle_noise", "retinamnist"),
        ("shot_noise", "dermamnist"),
        ("impulse_noise", "dermamnist"),
    ):
        y = corrupt(x, name, 3, np.random.default_rng(0), dataset=dataset)
        assert y.shape == x.shape and y.dtype == np.float32
        assert y.min() >= 0 and y.max() <= 1
        np.testing.assert_allclose(y * 255, np.round(y * 255), atol=1e-4)  # 8-bit levels
        assert 0.45 < y.mean() < 0.52
    g = corrupt(x, "gaussian_noise", 3, np.random.default_rng(0), dataset="retinamnist")
    assert g.std() == pytest.approx(0.12, abs=0.005)  # retinamnist severity 3: sigma 0.12
    s = corrupt(x, "speckle_noise", 3, np.random.default_rng(0), dataset="retinamnist")
    assert s.std() == pytest.approx(0.5 * 0.20, abs=0.005)  # x * N(0, 0.20)
    zeros = np.zeros((3, 8, 8), np.float32)
    np.testing.assert_array_equal(corrupt(zeros, "speckle_noise", 5, dataset="retinamnist"), 0)
    imp = corrupt(x, "impulse_noise", 5, np.random.default_rng(0), dataset="dermamnist")
    assert set(np.unique(np.round(imp * 255))) == {0, 128, 255}  # 0.5 is read as level 128
    hit = np.mean((imp == 0) | (imp == 1))
    assert hit == pytest.approx(0.17, abs=0.02)  # dermamnist severity 5: amount 0.17


def test_grey_route_and_luma() -> None:
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(co.rgb_to_l(rgb), np.asarray(Image.fromarray(rgb).convert("L")))
    grey = np.full((1, 6, 6), 100 / 255, np.float32)
    np.testing.assert_allclose(corrupt(grey, "brightness_down", 3, dataset="chestmnist"), 70 / 255)
    two = np.stack([grey[0], grey[0] * 2])  # C = 2: each channel alone as grey
    out = corrupt(two, "brightness_down", 3, dataset="chestmnist")
    np.testing.assert_allclose(out[:, 0, 0], [70 / 255, 140 / 255], atol=1e-6)


def test_3d_is_slice_by_slice() -> None:
    rng = np.random.default_rng(0)
    plane = rng.random((3, 12, 12)).astype(np.float32)
    vol = np.stack([plane, plane[:, ::-1]], 1)  # (C, Z, Y, X)
    for name in ("pixelate", "defocus_blur", "jpeg_compression", "contrast_down"):
        out = corrupt(vol, name, 3, dataset="retinamnist")
        assert out.shape == vol.shape and out.dtype == np.float32
        for z in range(2):
            np.testing.assert_array_equal(
                out[:, z], corrupt(vol[:, z], name, 3, dataset="retinamnist")
            )
    same = np.stack([plane, plane], 1)
    mb = corrupt(same, "motion_blur", 5, np.random.default_rng(3), dataset="retinamnist")
    np.testing.assert_array_equal(mb[:, 0], mb[:, 1])  # one angle per volume
    noisy = corrupt(same, "gaussian_noise", 3, np.random.default_rng(3), dataset="retinamnist")
    assert not np.array_equal(noisy[:, 0], noisy[:, 1])  # noise drawn per voxel


def test_motion_blur_angle_drawn_from_rng() -> None:
    x = np.random.default_rng(0).random((3, 16, 16)).astype(np.float32)
    a = corrupt(x, "motion_blur", 2, np.random.default_rng(5), dataset="retinamnist")
    angle = np.random.default_rng(5).uniform(-45, 45)
    u8 = np.moveaxis(np.round(x * 255).astype(np.uint8), 0, -1)[None]
    want = co.motion_blur_at(u8, 15, 5, angle)[0]
    np.testing.assert_array_equal(np.round(a * 255).astype(np.uint8), np.moveaxis(want, -1, 0))


def test_tables_lookup_and_fallback() -> None:
    assert corruption_names("retinamnist") == RETINA
    assert corruption_names() == tuple(CORRUPTIONS)  # generic set unchanged
    assert official_set_name("/data/medmnist/retinamnist.npz") == "retinamnist"
    assert official_set_name("RetinaMNIST_224.npz") == "retinamnist"
    assert official_set_name("organamnist") == "organamnist"
    for other in ("adrenalmnist3d.npz", "/data/folder", "train.csv", "", None):
        assert official_set_name(other) is None
    assert OFFICIAL_SETS["retinamnist"]["defocus_blur"][1][2] == (6, 0.3)  # severity 3
    assert all(len(p) == 5 for s in OFFICIAL_SETS.values() for _, p in s.values())
    assert {f for s in OFFICIAL_SETS.values() for f, _ in s.values()} == set(co.FAMILIES)


def test_bad_names_severities_datasets() -> None:
    x = np.zeros((3, 4, 4), np.float32)
    with pytest.raises(InputError, match="unknown corruption 'zoom_blur' for retinamnist"):
        corrupt(x, "zoom_blur", 1, dataset="retinamnist")
    with pytest.raises(InputError, match="no MedMNIST-C corruption set for 'fashionmnist'"):
        corrupt(x, "pixelate", 1, dataset="fashionmnist")
    with pytest.raises(InputError, match="no MedMNIST-C corruption set"):
        corruption_names("adrenalmnist3d")
    with pytest.raises(InputError, match=r"severity must be 1\.\.5"):
        corrupt(x, "pixelate", 0, dataset="retinamnist")
    with pytest.raises(InputError, match="expected"):
        corrupt(np.zeros((4, 4)), "pixelate", 1, dataset="retinamnist")
    with pytest.raises(InputError, match="unknown MedMNIST-C family"):
        co.apply_family(x, "fog", 1, np.random.default_rng(0))


def _fake(source: str) -> tuple[SimpleNamespace, SimpleNamespace]:
    from medseg.classify.data import Dataset

    rng = np.random.default_rng(0)
    images = rng.random((6, 3, 8, 8)).astype(np.float32)
    labels = np.array([0, 1, 0, 1, 0, 1])
    data = Dataset({"test": images}, {"test": labels}, "binary", ["0", "1"], source)
    cfg = SimpleNamespace(task="binary", spatial_dims=2, model="fake")

    def proba(x: np.ndarray) -> np.ndarray:
        p = x.reshape(len(x), -1).mean(1)
        return np.stack([1 - p, p], 1)

    return SimpleNamespace(config=cfg, classes=["0", "1"], predict_proba=proba), data


@pytest.mark.parametrize(
    ("source", "want_set", "names"),
    [
        ("/d/retinamnist.npz", "medmnist-c:retinamnist", RETINA),
        ("/d/folder", "generic", tuple(CORRUPTIONS)),
    ],
)
def test_evaluate_picks_the_set_from_the_file_name(source: str, want_set: str, names) -> None:
    from medseg.classify.evaluate import evaluate

    clf, data = _fake(source)
    rep = evaluate(clf, data, "test", corrupt=True, n_bootstrap=0, severities=(3,))
    assert rep["corruption_set"] == want_set
    assert tuple(rep["corruptions"]) == names
    generic = evaluate(clf, data, "test", True, 0, (3,), corruption_set="generic")
    assert tuple(generic["corruptions"]) == tuple(CORRUPTIONS)


def test_corrupt_batch_official_is_reproducible() -> None:
    x = np.random.default_rng(0).random((3, 3, 8, 8)).astype(np.float32)
    a = corrupt_batch(x, "speckle_noise", 2, seed=4, dataset="retinamnist")
    np.testing.assert_array_equal(
        a, corrupt_batch(x, "speckle_noise", 2, seed=4, dataset="retinamnist")
    )
    assert not np.array_equal(a[0] - x[0], a[1] - x[1])
