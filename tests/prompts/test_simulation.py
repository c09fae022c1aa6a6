"""Interaction simulator: boxes, clicks (RITM / CVPR 2025 rule), scribbles on hand-built masks."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import PromptError
from medseg.prompts.simulation import (
    Click,
    ClickConfig,
    ClickSimulator,
    ScribbleConfig,
    error_regions,
    next_click,
    next_scribble,
    region_distance,
    simulate_box,
    simulate_scribble,
    target_box,
)


def _mask(shape, *boxes) -> np.ndarray:
    """Boolean mask with rectangles ``(r0, r1, c0, c1)`` (end exclusive) set."""
    m = np.zeros(shape, dtype=bool)
    for r0, r1, c0, c1 in boxes:
        m[r0:r1, c0:c1] = True
    return m


# ---- boxes -------------------------------------------------------------------------------
def test_target_box_2d_and_3d() -> None:
    assert target_box(_mask((10, 12), (2, 7, 3, 10))) == (3, 2, 9, 6)
    vol = np.zeros((6, 8, 9), dtype=bool)
    vol[1:4, 2:5, 3:8] = True
    assert target_box(vol) == (3, 2, 1, 7, 4, 3)


def test_simulate_box_without_jitter_is_the_tight_box() -> None:
    assert simulate_box(_mask((10, 12), (2, 7, 3, 10))) == (3, 2, 9, 6)


def test_simulate_box_jitter_is_bounded_clipped_and_seeded() -> None:
    gt = _mask((40, 50), (10, 30, 5, 45))  # box (5, 10, 44, 29): width 40, height 20
    seen = set()
    for seed in range(30):
        box = simulate_box(gt, 0.2, np.random.default_rng(seed))
        assert box == simulate_box(gt, 0.2, np.random.default_rng(seed))
        x0, y0, x1, y1 = box
        assert 0 <= x0 < x1 <= 49 and 0 <= y0 < y1 <= 39
        assert abs(x0 - 5) <= 8 and abs(x1 - 44) <= 8  # 0.2 * 40
        assert abs(y0 - 10) <= 4 and abs(y1 - 29) <= 4  # 0.2 * 20
        seen.add(box)
    assert len(seen) > 20


def test_box_bad_input() -> None:
    with pytest.raises(PromptError, match="empty"):
        target_box(np.zeros((4, 4), bool))
    with pytest.raises(PromptError, match="jitter"):
        simulate_box(_mask((4, 4), (1, 2, 1, 2)), 1.5, np.random.default_rng(0))
    with pytest.raises(PromptError, match="random generator"):
        simulate_box(_mask((4, 4), (1, 2, 1, 2)), 0.1)
    with pytest.raises(PromptError, match="2D"):
        target_box(np.ones(5, bool))


# ---- clicks ------------------------------------------------------------------------------
def test_first_click_lands_at_the_distance_maximum_of_the_largest_region() -> None:
    # two missed regions: 5x5 (25 px) and 3x3 (9 px); the 5x5 centre is its unique DT maximum
    gt = _mask((20, 20), (2, 7, 3, 8), (12, 15, 12, 15))
    click = next_click(np.zeros_like(gt), gt)
    assert click == Click(point=(5, 4), label=1)
    dist = region_distance(_mask((20, 20), (2, 7, 3, 8)))
    assert dist[4, 5] == 3.0 and dist.max() == 3.0 and (dist == 3.0).sum() == 1


def test_image_border_counts_as_region_border() -> None:
    gt = _mask((10, 10), (0, 3, 0, 3))  # 3x3 in the corner
    dist = region_distance(gt)
    np.testing.assert_array_equal(dist[:3, :3], [[1, 1, 1], [1, 2, 1], [1, 1, 1]])
    assert next_click(np.zeros_like(gt), gt) == Click(point=(1, 1), label=1)


def test_negative_click_on_the_larger_false_positive() -> None:
    gt = _mask((20, 20), (0, 3, 0, 3))  # 3x3 target
    pred = _mask((20, 20), (0, 3, 0, 1), (10, 17, 10, 17))  # misses 6 px, adds a 7x7 FP
    regions = error_regions(pred, gt)
    assert [(r.size, r.false_negative) for r in regions] == [(49, False), (6, True)]
    assert next_click(pred, gt) == Click(point=(13, 13), label=0)


def test_equal_sizes_prefer_the_miss() -> None:
    gt = _mask((20, 20), (0, 3, 0, 3))
    pred = _mask((20, 20), (10, 13, 10, 13))  # 9 px missed, 9 px false positive
    assert next_click(pred, gt) == Click(point=(1, 1), label=1)


def test_no_pixel_is_clicked_twice_and_exhaustion_gives_none() -> None:
    gt = _mask((6, 6), (2, 3, 2, 4))  # a 2-pixel target
    sim = ClickSimulator(gt)
    empty = np.zeros_like(gt)
    clicks = [sim.next(empty), sim.next(empty), sim.next(empty)]
    assert clicks[:2] == [Click((2, 2), 1), Click((3, 2), 1)]
    assert clicks[2] is None
    assert sim.points == [(2, 2), (3, 2)] and sim.labels == [1, 1]


def test_clicked_pixels_move_the_click_to_the_next_best_pixel() -> None:
    gt = _mask((20, 20), (2, 7, 3, 8))
    clicked = np.zeros_like(gt)
    clicked[4, 5] = True
    click = next_click(np.zeros_like(gt), gt, clicked=clicked)
    assert click == Click(point=(4, 3), label=1)  # a DT-2 pixel, first in raster order


def test_perfect_prediction_gives_no_click() -> None:
    gt = _mask((8, 8), (2, 5, 2, 5))
    assert next_click(gt.copy(), gt) is None


def test_combined_regions_join_adjacent_misses_and_false_positives() -> None:
    gt = _mask((10, 12), (2, 5, 1, 5))  # 3x4 target
    pred = _mask((10, 12), (2, 5, 5, 7))  # a 3x2 false positive right next to it
    assert [r.size for r in error_regions(pred, gt, "separate")] == [12, 6]
    combined = error_regions(pred, gt, "combined")
    assert [(r.size, r.false_negative) for r in combined] == [(18, True)]
    click = next_click(pred, gt, config=ClickConfig(error_regions="combined"))
    assert click == Click(point=(2, 3), label=1)  # first DT-2 pixel of the 3x6 region is a miss


def test_random_tie_break_is_seeded_and_picks_a_maximum() -> None:
    gt = _mask((10, 12), (2, 5, 1, 9))  # 3x8: row 3, columns 2..7 tie at DT 2
    cfg = ClickConfig(tie_break="random")
    a = next_click(np.zeros_like(gt), gt, config=cfg, rng=np.random.default_rng(5))
    b = next_click(np.zeros_like(gt), gt, config=cfg, rng=np.random.default_rng(5))
    assert a == b and a.point[1] == 3 and 2 <= a.point[0] <= 7
    with pytest.raises(PromptError, match="random generator"):
        next_click(np.zeros_like(gt), gt, config=cfg)


def test_3d_click_and_anisotropic_sampling() -> None:
    gt = np.zeros((7, 9, 9), bool)
    gt[:, 1:8, 1:8] = True  # touches the top and bottom slices; in-plane DT max 4
    assert next_click(np.zeros_like(gt), gt) == Click(point=(4, 4, 3), label=1)
    # 3 mm slices: slices 1..3 are all >= 4 mm from the volume's end, first one wins
    assert ClickSimulator(gt, sampling=(3.0, 1.0, 1.0)).next().index == (1, 4, 4)


def test_click_bad_input() -> None:
    gt = _mask((6, 6), (1, 3, 1, 3))
    with pytest.raises(PromptError, match="empty"):
        ClickSimulator(np.zeros((6, 6), bool))
    with pytest.raises(PromptError, match="does not match"):
        next_click(np.zeros((5, 6), bool), gt)
    with pytest.raises(PromptError, match="clicked mask"):
        next_click(np.zeros_like(gt), gt, clicked=np.zeros((2, 2), bool))
    with pytest.raises(PromptError, match="error_regions"):
        ClickConfig(error_regions="both")
    with pytest.raises(PromptError, match="tie_break"):
        ClickConfig(tie_break="last")


# ---- scribbles ---------------------------------------------------------------------------
def _check_path(points: np.ndarray) -> None:
    steps = np.abs(np.diff(points, axis=0)).max(axis=1)
    assert np.all(steps == 1), "consecutive scribble points must be neighbours"


def test_first_scribble_lies_inside_the_eroded_target_and_is_seeded() -> None:
    gt = _mask((40, 40), (5, 35, 10, 30))
    a = next_scribble(None, gt, rng=np.random.default_rng(3))
    b = next_scribble(None, gt, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a.points, b.points)
    assert a.label == 1 and len(a.points) >= 2
    _check_path(a.points)
    dist = region_distance(gt)
    assert np.all(dist[a.points[:, 1], a.points[:, 0]] >= 3.0)  # erosion 0.3 x max DT 10
    assert a.mask(gt.shape).sum() == len(a.points)


def test_corrective_scribble_is_negative_in_a_false_positive() -> None:
    gt = _mask((40, 40), (2, 8, 2, 8))
    pred = gt | _mask((40, 40), (15, 35, 15, 35))
    s = next_scribble(pred, gt, rng=np.random.default_rng(0))
    assert s.label == 0
    assert np.all((pred & ~gt)[s.points[:, 1], s.points[:, 0]])
    assert next_scribble(gt.copy(), gt, rng=np.random.default_rng(0)) is None


def test_scribble_in_a_single_pixel_region_and_3d() -> None:
    one = _mask((5, 5), (2, 3, 2, 3))
    s = simulate_scribble(one, 1, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(s.points, [[2, 2]])
    vol = np.zeros((12, 12, 12), bool)
    vol[2:10, 3:9, 3:9] = True
    s3 = simulate_scribble(vol, 1, rng=np.random.default_rng(1))
    assert s3.points.shape[1] == 3 and np.all(vol[tuple(s3.points[:, ::-1].T)])


def test_scribble_bad_input() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(PromptError, match="empty"):
        simulate_scribble(np.zeros((4, 4), bool), 1, rng=rng)
    with pytest.raises(PromptError, match="label"):
        simulate_scribble(_mask((4, 4), (1, 3, 1, 3)), 2, rng=rng)
    with pytest.raises(PromptError, match="erosion"):
        ScribbleConfig(erosion=1.5)
    with pytest.raises(PromptError, match="min_length"):
        ScribbleConfig(min_length=0.0)
