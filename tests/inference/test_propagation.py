"""The slice-by-slice 3D propagation rule (``algorithm="slices"``), with a fake segmenter
instead of a model (fast and exact). The keyframe rule: ``test_propagation_keyframes.py``."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from propagation_fakes import segmenter  # tests/_support
from propagation_fakes import start_logits as _start
from propagation_fakes import tube as _tube

from medseg.errors import PromptError
from medseg.inference.propagation import (
    PropagationConfig,
    enlarge_box,
    propagate,
    stability_score,
)
from medseg.inference.result import UNREACHED_LOGIT

SLICES = PropagationConfig(algorithm="slices")
_segmenter = partial(segmenter, count_boxes=True)  # calls: (slice, objects)


def test_recovers_the_object_and_stops_at_its_ends() -> None:
    truth, calls = _tube(), []
    res = propagate(
        _segmenter(truth, calls), _start(truth, 5), np.array([0.9]), 5, 12, config=SLICES
    )
    assert res.ranges == ((3, 8),)
    np.testing.assert_array_equal(res.logits[0] > 0, truth)
    # the slice after each end was tried (and rejected: unstable blob), nothing beyond
    assert [z for z, _ in calls] == [6, 7, 8, 9, 4, 3, 2]
    assert np.all(res.logits[0, [0, 1, 2, 9, 10, 11]] == UNREACHED_LOGIT)
    assert res.boxes[0][6] == (5.0, 5.0, 14.0, 14.0)  # tight (7, 7, 12, 12) + 2 px
    assert res.scores[0] == pytest.approx(0.9)


def test_z_range_limits_the_visited_slices() -> None:
    truth, calls = _tube(), []
    res = propagate(
        _segmenter(truth, calls), _start(truth, 5), np.array([1.0]), 5, 12, (4, 6), config=SLICES
    )
    assert res.ranges == ((4, 6),)
    assert sorted(z for z, _ in calls) == [4, 6]
    with pytest.raises(PromptError, match="outside the slice range"):
        propagate(
            _segmenter(truth, []), _start(truth, 5), np.array([1.0]), 5, 12, (6, 8), config=SLICES
        )


def test_objects_advance_together_and_stop_independently() -> None:
    a, b = _tube(first=4, last=6), _tube(first=2, last=10)
    a, b = np.pad(a, ((0, 0), (0, 0), (0, 12))), np.pad(b, ((0, 0), (0, 0), (12, 0)))
    truth = a | b  # (12, 20, 32): a in columns 7..12, b in 19..24
    calls: list = []
    start = np.concatenate([_start(a, 5), _start(b, 5)])
    res = propagate(_segmenter(truth, calls), start, np.array([1.0, 1.0]), 5, 12, config=SLICES)
    assert res.ranges == ((4, 6), (2, 10))
    assert calls[:3] == [(6, 2), (7, 2), (8, 1)]  # one call per slice for all active objects


def test_small_or_jumping_masks_stop_propagation() -> None:
    truth = _tube(first=0, last=11)
    truth[8] = False
    truth[8, 9:11, 9:11] = True  # 4 px = 11 % of the 36 px start area: under 20 %
    cfg = PropagationConfig(min_area_fraction=0.2, algorithm="slices")
    res = propagate(_segmenter(truth, []), _start(truth, 5), np.array([1.0]), 5, 12, config=cfg)
    assert res.ranges == ((0, 7),)
    # a mask that does not overlap the previous one is rejected (the object "jumped")
    jump = _tube(first=0, last=11)
    jump[7:] = False
    jump[7:, 13:16, 13:16] = True  # inside the enlarged box, but disjoint from slice 6
    res = propagate(_segmenter(jump, []), _start(jump, 5), np.array([1.0]), 5, 12, config=SLICES)
    assert res.ranges == ((0, 6),)


def test_empty_start_mask_is_not_propagated() -> None:
    calls: list = []
    start = np.full((1, 20, 20), -5.0, np.float32)
    res = propagate(_segmenter(_tube(), calls), start, np.array([0.1]), 5, 12, config=SLICES)
    assert calls == [] and res.ranges == ((5, 5),) and not (res.logits > 0).any()


def test_enlarge_box_and_stability_score() -> None:
    assert enlarge_box((10, 20, 29, 39), (50, 40), 0.1, 2.0) == (8.0, 18.0, 31.0, 41.0)
    assert enlarge_box((0, 0, 4, 4), (50, 40), 0.5, 0.0) == (0.0, 0.0, 6.5, 6.5)
    assert enlarge_box((30, 40, 39, 49), (50, 40), 0.1, 2.0) == (28.0, 38.0, 39.0, 49.0)
    logits = np.array([[3.0, 0.5, -0.5, -3.0]])
    assert stability_score(logits) == pytest.approx(1 / 3)
    assert stability_score(np.full((2, 2), -9.0)) == 1.0


def test_config_json_and_validation() -> None:
    cfg = PropagationConfig(margin=0.2, min_stability=0.5)
    assert PropagationConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(PromptError, match="margin must be >= 0"):
        PropagationConfig(margin=-0.1)


def _previous(truth: np.ndarray, slices) -> np.ndarray:
    """(1, Z, H, W) logits: ``truth`` on ``slices``, unreached elsewhere."""
    prev = np.full((1, *truth.shape), UNREACHED_LOGIT, np.float32)
    for z in slices:
        prev[0, z] = np.where(truth[z], 6.0, -6.0)
    return prev


def test_correction_extends_until_it_agrees_with_the_previous_result() -> None:
    truth, calls = _tube(), []  # object on slices 3..8; previous stopped at 5
    prev = _previous(truth, [3, 4, 5])
    res = propagate(
        _segmenter(truth, calls), _start(truth, 7), np.ones(1), 7, 12, previous=prev, config=SLICES
    )
    assert np.array_equal(res.logits[0] > 0, truth)
    assert res.ranges == ((3, 8),)
    # up: 8 accepted, 9 rejected; down: 6 new, 5 agrees (Dice 1) -> 4, 3 kept, not visited
    assert sorted(z for z, _ in calls) == [5, 6, 8, 9]
    assert np.array_equal(res.logits[0, :5], prev[0, :5])


def test_negative_correction_ends_a_leak_and_keeps_the_core() -> None:
    truth = _tube()
    leak = truth.copy()
    leak[9:12, 7:13, 7:13] = True  # the previous result leaked into slices 9..11
    prev = np.where(leak, 6.0, -6.0).astype(np.float32)[None]
    prev[0, 3, 5:15, 5:15] = 6.0  # its largest slice (the core) is 3
    calls: list = []
    empty = np.full((1, 20, 20), -6.0, np.float32)  # the click removed the object on 9
    res = propagate(
        _segmenter(truth, calls), empty, np.ones(1), 9, 12, previous=prev, config=SLICES
    )
    assert calls == []  # nothing to propagate from an empty slice
    assert not (res.logits[0, 9:] > 0).any()  # away from the core: cleared
    assert np.array_equal(res.logits[0, :9], prev[0, :9])  # towards the core: kept
    assert res.ranges == ((3, 8),)


def test_rejection_towards_the_core_keeps_what_the_correction_cannot_reach() -> None:
    truth, calls = _tube(), []
    prev = np.full((1, *truth.shape), -6.0, np.float32)
    prev[0, 0:2, 0:5, 0:5] = 6.0  # an earlier, separate part on slices 0..1 (the core)
    res = propagate(
        _segmenter(truth, calls), _start(truth, 5), np.ones(1), 5, 12, previous=prev, config=SLICES
    )
    mask = res.logits[0] > 0
    assert np.array_equal(mask[3:9], truth[3:9])  # the corrected object, propagated
    assert mask[0:2, 0:5, 0:5].all() and not mask[2].any() and not mask[9:].any()
    assert res.ranges == ((0, 8),)
    with pytest.raises(PromptError, match="previous result shape"):
        propagate(
            _segmenter(truth, []),
            _start(truth, 5),
            np.ones(1),
            5,
            12,
            previous=prev[:, :5],
            config=SLICES,
        )
