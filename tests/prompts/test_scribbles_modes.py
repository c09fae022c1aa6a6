"""Scribble kinds (centre line, random line, contour fragment, warping) on hand-built masks."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import PromptError
from medseg.prompts.simulation import next_scribble, region_distance, simulate_scribble
from medseg.prompts.simulation.scribble_shapes import _longest_run, connect_points, contour_path
from medseg.prompts.simulation.scribbles import SCRIBBLE_MODES, ScribbleShapeConfig

MODES = ("centerline", "line", "contour", "random")


def _rect() -> np.ndarray:
    """``(12, 16)`` mask with rows 2-9, columns 3-13 set."""
    m = np.zeros((12, 16), dtype=bool)
    m[2:10, 3:14] = True
    return m


def _annulus() -> np.ndarray:
    """``(21, 21)`` ring of radii 4-9 around pixel ``(10, 10)``."""
    yy, xx = np.mgrid[0:21, 0:21]
    r = np.hypot(yy - 10, xx - 10)
    return (r >= 4) & (r <= 9)


def _check(s, region: np.ndarray) -> None:
    """``s`` is a non-empty path of neighbouring pixels, all inside ``region``."""
    assert len(s.points) >= 1
    assert np.all(region[tuple(s.points[:, ::-1].T)]), "scribble leaves its region"
    if len(s.points) > 1:
        steps = np.abs(np.diff(s.points, axis=0)).max(axis=1)
        assert np.all(steps == 1), "consecutive scribble points must be neighbours"


def test_modes_constant_lists_the_four_modes() -> None:
    assert SCRIBBLE_MODES == MODES


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("warp", [0.0, 1.0])
@pytest.mark.parametrize("shape", ["rect", "annulus"])
def test_every_mode_is_inside_the_region_and_seeded(mode: str, warp: float, shape: str) -> None:
    region = _rect() if shape == "rect" else _annulus()
    for seed in range(12):
        a = simulate_scribble(region, 1, rng=np.random.default_rng(seed), mode=mode, warp=warp)
        b = simulate_scribble(region, 1, rng=np.random.default_rng(seed), mode=mode, warp=warp)
        _check(a, region)
        np.testing.assert_array_equal(a.points, b.points)
        assert a.label == 1 and a.points.dtype == np.int64


def test_default_is_the_unchanged_centerline_scribble() -> None:
    # Exact outputs of the centre-line simulator before scribble modes existed (benchmark
    # reproducibility): the defaults must keep drawing them.
    s = simulate_scribble(_rect(), 1, rng=np.random.default_rng(0))
    assert s.points.tolist() == [[9, 5], [8, 5], [7, 5], [6, 6]]
    ring = simulate_scribble(_annulus(), 1, rng=np.random.default_rng(0))
    assert ring.points.tolist() == [
        [4, 10], [4, 11], [4, 12], [4, 13], [5, 14], [6, 15],
        [7, 15], [8, 16], [9, 16], [10, 16], [11, 16], [12, 16],
    ]  # fmt: skip
    explicit = simulate_scribble(
        _rect(), 1, rng=np.random.default_rng(0), mode="centerline", warp=0.0
    )
    np.testing.assert_array_equal(explicit.points, s.points)


def test_contour_fragment_lies_just_inside_the_border() -> None:
    shapes = ScribbleShapeConfig(contour_inset=(2, 2))
    for region in (_rect(), _annulus()):
        dist = region_distance(region)
        for seed in range(10):
            s = simulate_scribble(
                region, 1, rng=np.random.default_rng(seed), mode="contour", shapes=shapes
            )
            _check(s, region)
            d = dist[tuple(s.points[:, ::-1].T)]
            assert np.all(d > 2.0) and np.all(d <= 3.0)


def test_full_contour_at_inset_zero_is_the_region_border() -> None:
    m = np.zeros((6, 7), dtype=bool)
    m[1:5, 1:6] = True
    cfg = ScribbleShapeConfig(contour_inset=(0, 0), contour_fraction=(1.0, 1.0))
    loop = contour_path(m, cfg, np.random.default_rng(0))
    border = m & ~np.pad(m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:], 1)
    assert len(loop) == 14 and len({tuple(p) for p in loop}) == 14
    assert {tuple(p) for p in loop} == {tuple(p) for p in np.argwhere(border)}


def test_contour_on_a_too_thin_region_falls_back_to_its_border() -> None:
    m = np.zeros((5, 9), dtype=bool)
    m[2, 1:8] = True  # a 1-pixel line: nothing is 3 px from its border
    s = simulate_scribble(
        m, 1, rng=np.random.default_rng(0), mode="contour",
        shapes=ScribbleShapeConfig(contour_inset=(3, 3)),
    )  # fmt: skip
    _check(s, m)


def test_random_line_in_a_single_row_stays_in_the_row() -> None:
    m = np.zeros((5, 20), dtype=bool)
    m[2, 2:18] = True
    for seed in range(10):
        s = simulate_scribble(m, 1, rng=np.random.default_rng(seed), mode="line")
        _check(s, m)
        assert np.all(s.points[:, 1] == 2)


def test_random_mode_weights_select_one_kind() -> None:
    region = _rect()
    dist = region_distance(region)
    only_contour = ScribbleShapeConfig(contour_inset=(1, 1), mode_weights=(0.0, 0.0, 1.0))
    only_center = ScribbleShapeConfig(mode_weights=(1.0, 0.0, 0.0))
    for seed in range(8):
        c = simulate_scribble(
            region, 1, rng=np.random.default_rng(seed), mode="random", shapes=only_contour
        )
        d = dist[tuple(c.points[:, ::-1].T)]
        assert np.all((d > 1.0) & (d <= 2.0))
        k = simulate_scribble(
            region, 1, rng=np.random.default_rng(seed), mode="random", shapes=only_center
        )
        assert np.all(dist[tuple(k.points[:, ::-1].T)] >= 0.3 * dist.max())


def test_warped_negative_scribble_never_enters_the_object() -> None:
    gt = np.zeros((30, 30), dtype=bool)
    gt[5:25, 5:15] = True
    pred = gt.copy()
    pred[5:25, 15:22] = True  # false positive right of the object
    big_warp = ScribbleShapeConfig(warp_sigma=3.0, warp_amplitude=6.0)
    for seed in range(15):
        for mode in MODES:
            s = next_scribble(
                pred, gt, rng=np.random.default_rng(seed), mode=mode, warp=True, shapes=big_warp
            )
            assert s is not None and s.label == 0
            _check(s, pred & ~gt)


def test_warped_scribble_3d_stays_inside() -> None:
    vol = np.zeros((10, 12, 14), dtype=bool)
    vol[2:8, 2:10, 3:12] = True
    for seed in range(6):
        for mode in MODES:
            s = simulate_scribble(vol, 1, rng=np.random.default_rng(seed), mode=mode, warp=1.0)
            assert s.points.shape[1] == 3
            _check(s, vol)
    c = simulate_scribble(vol, 1, rng=np.random.default_rng(0), mode="contour")
    assert len(set(c.points[:, 2].tolist())) == 1  # a contour lies on one z slice


def test_connect_points_and_longest_run() -> None:
    path = connect_points(np.array([[0, 0], [0, 3], [0, 3], [2, 5]]))
    assert path.tolist() == [[0, 0], [0, 1], [0, 2], [0, 3], [1, 4], [2, 5]]
    assert _longest_run(np.array([1, 1, 0, 1, 1, 1, 0, 1], dtype=bool)) == (3, 6)
    assert _longest_run(np.zeros(3, dtype=bool)) == (0, 0)


@pytest.mark.parametrize("mode", MODES)
def test_empty_region_raises_for_every_mode(mode: str) -> None:
    with pytest.raises(PromptError, match="empty"):
        simulate_scribble(np.zeros((6, 6), bool), 1, rng=np.random.default_rng(0), mode=mode)


def test_bad_mode_warp_and_shape_config_raise() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(PromptError, match="mode"):
        simulate_scribble(_rect(), 1, rng=rng, mode="zigzag")
    with pytest.raises(PromptError, match="mode"):
        next_scribble(None, _rect(), rng=rng, mode="skeleton")
    with pytest.raises(PromptError, match="warp"):
        simulate_scribble(_rect(), 1, rng=rng, warp=1.5)
    with pytest.raises(PromptError, match="line_segments"):
        ScribbleShapeConfig(line_segments=(0, 2))
    with pytest.raises(PromptError, match="contour_fraction"):
        ScribbleShapeConfig(contour_fraction=(0.5, 1.5))
    with pytest.raises(PromptError, match="contour_inset"):
        ScribbleShapeConfig(contour_inset=(3, 1))
    with pytest.raises(PromptError, match="warp_sigma"):
        ScribbleShapeConfig(warp_sigma=0.0)
    with pytest.raises(PromptError, match="mode_weights"):
        ScribbleShapeConfig(mode_weights=(0.0, 0.0, 0.0))
