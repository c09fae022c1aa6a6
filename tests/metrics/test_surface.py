"""Surface metrics against hand computations and against MONAI's public ``compute_*``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medseg.errors import InputError
from medseg.metrics import assd, hd95, nsd, surface_metrics
from medseg.metrics.surface import crop_to_union


def _square(shift: int = 0) -> np.ndarray:
    """4x4 square at rows/cols 2..5 of a 10x10 image, shifted down ``shift`` rows."""
    m = np.zeros((10, 10), bool)
    m[2 + shift : 6 + shift, 2:6] = True
    return m


# Hand computation (surface = 12-pixel ring of each square, erosion with the cross element).
# Shift 1 along axis 0: per direction 6 ring pixels are at distance 1 (the leading row and the
# two inner pixels of the trailing row), 6 at distance 0.
#   ASSD = 12 / 24 = 0.5; q95 of [0]*6 + [1]*6: position 0.95 * 11 = 10.45 -> 1.
# Shift 2: per direction 4 pixels at 2, 4 at 1, 4 at 0 -> ASSD = 24 / 24 = 1, HD95 = 2.
@pytest.mark.parametrize(("shift", "want_hd95", "want_assd"), [(1, 1.0, 0.5), (2, 2.0, 1.0)])
def test_square_shift_distances(shift: int, want_hd95: float, want_assd: float) -> None:
    a, b = _square(), _square(shift)
    assert hd95(b, a) == pytest.approx(want_hd95, abs=1e-6)
    assert assd(b, a) == pytest.approx(want_assd, abs=1e-6)
    assert hd95(a, b) == pytest.approx(want_hd95, abs=1e-6)


def test_spacing_follows_array_axis_order() -> None:
    a, b = _square(), _square(1)  # shift along axis 0
    # spacing (2, 1): the 4 leading-row pixels are 2 mm away; the 2 inner trailing-row pixels
    # are 1 mm from the side of the other square -> sum 10 per direction, ASSD = 20 / 24.
    assert hd95(b, a, spacing=(2.0, 1.0)) == pytest.approx(2.0, abs=1e-6)
    assert assd(b, a, spacing=(2.0, 1.0)) == pytest.approx(20 / 24, abs=1e-6)
    # spacing (1, 2) stretches the other axis: the shift still measures 1 mm.
    assert hd95(b, a, spacing=(1.0, 2.0)) == pytest.approx(1.0, abs=1e-6)
    assert assd(b, a, spacing=(1.0, 2.0)) == pytest.approx(0.5, abs=1e-6)


def test_nsd_square_hand_values() -> None:
    """Sub-voxel surfaces: the ring of 16 corner points, 12 straight segments (length = the
    spacing across them) and 4 diagonal corner segments (length c)."""
    a, b = _square(), _square(1)
    c = math.sqrt(0.5)  # corner segment, spacing (1, 1)
    # Shift 1: side segments (6) and trailing corners (2) are at distance 0, the rest at 1.
    assert nsd(b, a, tolerance_mm=0.5) == pytest.approx((6 + 2 * c) / (12 + 4 * c), abs=1e-6)
    assert nsd(b, a, tolerance_mm=0.99) == pytest.approx(0.5, abs=1e-6)
    assert nsd(b, a, tolerance_mm=1.0) == pytest.approx(1.0, abs=1e-6)
    # Shift 2: distance 0 for 4 sides + 2 corners, 1 for 2 sides + 2 trailing-row segments.
    b2 = _square(2)
    assert nsd(b2, a, tolerance_mm=0.5) == pytest.approx((4 + 2 * c) / (12 + 4 * c), abs=1e-6)
    assert nsd(b2, a, tolerance_mm=1.0) == pytest.approx((8 + 2 * c) / (12 + 4 * c), abs=1e-6)
    assert nsd(b2, a, tolerance_mm=2.0) == pytest.approx(1.0, abs=1e-6)
    # Spacing (2, 1): segments along axis 0 are 2 mm long, corner segments sqrt(1 + 0.25).
    c2 = math.sqrt(1.25)
    got = nsd(b, a, spacing=(2.0, 1.0), tolerance_mm=1.0)
    assert got == pytest.approx((14 + 2 * c2) / (18 + 4 * c2), abs=1e-6)
    assert nsd(b, a, spacing=(2.0, 1.0), tolerance_mm=1.9) == pytest.approx(got, abs=1e-6)
    assert nsd(b, a, spacing=(2.0, 1.0), tolerance_mm=2.0) == pytest.approx(1.0, abs=1e-6)


# MONAI's compute_* warn about their own internal use of a deprecated argument.
_MONAI_WARNING = "ignore:.*always_return_as_numpy"


@pytest.mark.filterwarnings(_MONAI_WARNING)
def test_percentile_is_linear_interpolation() -> None:
    """A 11-pixel line vs the same line plus one pixel 10 away: d(B->A) = [0]*11 + [10].

    q95 with linear interpolation: position 0.95 * 11 = 10.45 -> 0 + 0.45 * 10 = 4.5
    (nearest-rank would give 10). MONAI's compute_hausdorff_distance agrees.
    """
    a = np.zeros((12, 12), bool)
    a[0, 0:11] = True
    b = a.copy()
    b[10, 0] = True
    assert hd95(b, a) == pytest.approx(4.5, abs=1e-6)
    assert assd(b, a) == pytest.approx(10 / 23, abs=1e-6)

    import torch
    from monai.metrics import compute_hausdorff_distance

    t = lambda m: torch.from_numpy(m.astype(np.float32))[None, None]  # noqa: E731
    monai_hd = compute_hausdorff_distance(t(b), t(a), include_background=True, percentile=95)
    assert float(monai_hd) == pytest.approx(4.5, abs=1e-5)


def test_cube_3d_anisotropic() -> None:
    """4^3 cube (56 surface voxels) shifted 1 voxel along axis 0.

    Per direction: the leading face (16) and the 4 inner voxels of the trailing face are 1
    voxel away, the other 36 at 0. With spacing (2, 1, 1) the leading face is 2 mm away and the
    4 inner voxels stay 1 mm away (from the side ring).
    """
    a = np.zeros((10, 10, 10), bool)
    a[2:6, 2:6, 2:6] = True
    b = np.roll(a, 1, axis=0)
    assert hd95(b, a) == pytest.approx(1.0, abs=1e-6)
    assert assd(b, a) == pytest.approx(40 / 112, abs=1e-6)
    assert hd95(b, a, (2.0, 1.0, 1.0)) == pytest.approx(2.0, abs=1e-6)
    assert assd(b, a, (2.0, 1.0, 1.0)) == pytest.approx(72 / 112, abs=1e-6)
    assert hd95(b, a, (1.0, 1.0, 2.0)) == pytest.approx(1.0, abs=1e-6)
    assert nsd(b, a, (2.0, 1.0, 1.0), tolerance_mm=2.0) == pytest.approx(1.0, abs=1e-6)
    assert 0.0 < nsd(b, a, (2.0, 1.0, 1.0), tolerance_mm=1.0) < 1.0


def test_identical_masks() -> None:
    a = _square()
    assert surface_metrics(a, a, (0.7, 1.3), 0.0) == {"hd95": 0.0, "assd": 0.0, "nsd": 1.0}


def test_empty_rules() -> None:
    empty = np.zeros((10, 10), bool)
    a = _square()
    assert surface_metrics(empty, empty) == {"hd95": 0.0, "assd": 0.0, "nsd": 1.0}
    for p, g in ((empty, a), (a, empty)):
        out = surface_metrics(p, g)
        assert math.isinf(out["hd95"]) and math.isinf(out["assd"])
        assert out["nsd"] == 0.0


def _blob(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    from scipy import ndimage

    m = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5) > 0.05
    inner = tuple(slice(2, n - 2) for n in shape)
    out = np.zeros(shape, bool)
    out[inner] = m[inner]  # keep clear of the border (see the surface module docstring)
    return out


@pytest.mark.filterwarnings(_MONAI_WARNING)
@pytest.mark.parametrize(
    ("shape", "spacing"), [((40, 36), (0.8, 1.7)), ((14, 20, 18), (3.0, 0.9, 1.1))]
)
def test_equals_monai_compute_functions(shape: tuple[int, ...], spacing: tuple[float, ...]) -> None:
    import torch
    from monai.metrics import (
        compute_average_surface_distance,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    rng = np.random.default_rng(len(shape))
    p, g = _blob(rng, shape), _blob(rng, shape)
    t = lambda m: torch.from_numpy(m.astype(np.float32))[None, None]  # noqa: E731
    kw = {"include_background": True, "spacing": list(spacing)}
    want = {
        "hd95": float(compute_hausdorff_distance(t(p), t(g), percentile=95, **kw)),
        "assd": float(compute_average_surface_distance(t(p), t(g), symmetric=True, **kw)),
        "nsd": float(compute_surface_dice(t(p), t(g), [1.5], use_subvoxels=True, **kw)),
    }
    got = surface_metrics(p, g, spacing, tolerance_mm=1.5)
    assert got == pytest.approx(want, abs=1e-5)
    assert 0 < got["nsd"] < 1 and got["hd95"] > 0


def test_crop_keeps_values_and_pads_border_objects() -> None:
    a = np.zeros((30, 30), bool)
    a[0:4, 0:5] = True  # touches the border
    b = np.roll(a, 1, axis=1)
    pc, gc = crop_to_union(b, a)
    assert pc.shape == gc.shape == (6, 8)  # union box 4 x 6, plus one zero voxel each side
    assert not pc[0].any() and not pc[-1].any()
    # the same pair far from the border gives the same values once padded
    moved_a, moved_b = np.roll(a, (10, 10), (0, 1)), np.roll(b, (10, 10), (0, 1))
    assert surface_metrics(b, a, (1.0, 2.0)) == pytest.approx(
        surface_metrics(moved_b, moved_a, (1.0, 2.0))
    )


def test_bad_inputs() -> None:
    a = _square()
    with pytest.raises(InputError, match=r"\(10, 10\).*\(10, 9\)"):
        hd95(a, a[:, :9])
    with pytest.raises(InputError, match="2 axes"):
        assd(a, a, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(InputError, match="positive"):
        nsd(a, a, spacing=(1.0, 0.0))
    with pytest.raises(InputError, match="tolerance"):
        nsd(a, a, tolerance_mm=-1.0)
    with pytest.raises(InputError, match="2D"):
        hd95(np.zeros(5, bool), np.zeros(5, bool))
    bad = a.astype(float)
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        hd95(bad, a)
    with pytest.raises(InputError, match="unknown surface metric"):
        surface_metrics(a, a, which=("hd100",))
