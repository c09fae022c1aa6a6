"""The keyframe 3D propagation rule (the default), with a fake segmenter (fast and exact)."""

from __future__ import annotations

import numpy as np
import pytest
from propagation_fakes import segmenter as _segmenter  # tests/_support
from propagation_fakes import start_logits as _start
from propagation_fakes import tube as _tube

from medseg.errors import PromptError
from medseg.inference.propagation import PropagationConfig, propagate
from medseg.inference.propagation_keyframes import first_step, interpolate_masks
from medseg.inference.result import UNREACHED_LOGIT


def test_keyframes_skip_slices_and_bisect_to_the_exact_ends() -> None:
    truth, calls = _tube(), []
    res = propagate(_segmenter(truth, calls), _start(truth, 5), np.array([0.9]), 5, 12,
                    spacing=(1.0, 1.0, 1.0))  # fmt: skip
    assert res.ranges == ((3, 8),)
    np.testing.assert_array_equal(res.logits[0] > 0, truth)
    # up: step 3 mm = 3 slices -> 8 (accepted, same shape: step doubles), 11 rejected,
    # bisected to 9 (rejected); down: 2 rejected, bisected to 4 and then 3 (accepted)
    assert calls == [8, 11, 9, 2, 4, 3]
    assert np.all(res.logits[0, [0, 1, 2, 9, 10, 11]] == UNREACHED_LOGIT)
    assert sorted(res.boxes[0]) == [3, 4, 8]  # keyframes only; 6, 7 interpolated
    assert res.boxes[0][8] == (5.0, 5.0, 14.0, 14.0)  # tight (7, 7, 12, 12) + 2 px


def test_step_doubles_up_to_max_step_and_follows_the_spacing() -> None:
    truth, calls = _tube(depth=40, first=0, last=39), []
    res = propagate(_segmenter(truth, calls), _start(truth, 0), np.ones(1), 0, 40,
                    spacing=(1.0, 0.5, 0.5))  # fmt: skip
    assert calls == [3, 9, 17, 25, 33, 39]  # 3, 6, then 8 = max_step, clipped at the end
    assert res.ranges == ((0, 39),) and (res.logits[0] > 0).sum() == truth.sum()
    calls.clear()
    cfg = PropagationConfig(max_step=2)
    propagate(_segmenter(truth, calls), _start(truth, 0), np.ones(1), 0, 40, (0, 9), cfg,
              spacing=(0.5, 1.0, 1.0))  # fmt: skip
    assert calls == [6, 8, 9]  # 3 mm at 0.5 mm = 6 slices, then at most 2
    assert first_step(2.0, 3.0) == 2 and first_step(17.0, 3.0) == 1
    assert first_step(0.0, 3.0) == 1 and first_step(float("nan"), 3.0) == 1


def test_a_mask_that_grows_too_much_is_a_leak() -> None:
    truth = _tube(first=3, last=11)
    truth[8:, 5:15, 5:15] = True  # from slice 8 the mask "leaks": 100 px after 36 px
    res = propagate(_segmenter(truth, []), _start(truth, 5), np.ones(1), 5, 12,
                    spacing=(1.0, 1.0, 1.0))  # fmt: skip
    assert res.ranges == ((3, 7),)  # 100 > 1.3 * 36: rejected at 8
    loose = PropagationConfig(max_growth=3.0)
    res = propagate(_segmenter(truth, []), _start(truth, 5), np.ones(1), 5, 12, config=loose,
                    spacing=(1.0, 1.0, 1.0))  # fmt: skip
    assert res.ranges == ((3, 11),)


def test_interpolation_of_signed_distances() -> None:
    a = np.zeros((6, 12), bool)
    b = np.zeros((6, 12), bool)
    a[:, 0:4], b[:, 0:8] = True, True  # a band 4 then 8 columns wide
    mid = interpolate_masks(a, b, 3) > 0
    expected = np.zeros((3, 6, 12), bool)
    for j, width in enumerate([5, 6, 7]):  # signed distances 4 - c / 8 - c, interpolated
        expected[j, :, :width] = True
    np.testing.assert_array_equal(mid, expected)
    assert interpolate_masks(a, b, 0).shape == (0, 6, 12)
    none = interpolate_masks(np.zeros((4, 4), bool), np.zeros((4, 4), bool), 2)
    assert none.shape == (2, 4, 4) and not (none > 0).any()


def test_correction_stops_where_it_agrees_and_keeps_the_previous_result() -> None:
    truth, calls = _tube(), []  # object on slices 3..8; the previous result has 3..5 only
    prev = np.full((1, *truth.shape), UNREACHED_LOGIT, np.float32)
    prev[0, 3:6] = np.where(truth[3:6], 6.0, -6.0)
    res = propagate(_segmenter(truth, calls), _start(truth, 7), np.ones(1), 7, 12,
                    previous=prev, spacing=(1.0, 1.0, 1.0))  # fmt: skip
    # up: 10 rejected, 8 accepted, 9 rejected (beyond: the previous result, empty there);
    # down: 4 agrees with the previous result -> 5, 6 interpolated, 3 kept from it
    assert calls == [10, 8, 9, 4]
    np.testing.assert_array_equal(res.logits[0] > 0, truth)
    assert res.logits[0, 3].tolist() == prev[0, 3].tolist()


def test_correction_reach_limits_the_changed_slices() -> None:
    truth, calls = _tube(first=0, last=11), []
    prev = np.where(_tube(first=0, last=11), 6.0, -6.0).astype(np.float32)[None]
    prev[0, :, 7:13, 7:9] = -6.0  # the previous result misses 2 columns everywhere
    cfg = PropagationConfig(correction_reach_mm=2.0)
    res = propagate(_segmenter(truth, calls), _start(truth, 5), np.ones(1), 5, 12, config=cfg,
                    spacing=(1.0, 1.0, 1.0))  # fmt: skip
    assert calls == [8, 11, 2, 0]  # no previous: the reach does not apply
    calls.clear()
    res = propagate(_segmenter(truth, calls), _start(truth, 5), np.ones(1), 5, 12, config=cfg,
                    previous=prev, spacing=(1.0, 1.0, 1.0))  # fmt: skip
    assert calls == [7, 3]  # 2 slices each way, then the previous result is kept
    mask = res.logits[0] > 0
    np.testing.assert_array_equal(mask[3:8], truth[3:8])
    np.testing.assert_array_equal(
        mask[[0, 1, 2, 8, 9, 10, 11]], prev[0, [0, 1, 2, 8, 9, 10, 11]] > 0
    )


def test_config_validation() -> None:
    with pytest.raises(PromptError, match="algorithm must be one of"):
        PropagationConfig(algorithm="fast")
    with pytest.raises(PromptError, match="max_step must be >= 1"):
        PropagationConfig(max_step=0)
    cfg = PropagationConfig(algorithm="slices", max_growth=2.0)
    assert PropagationConfig.from_json(cfg.to_json()) == cfg


def test_negative_correction_that_empties_its_slice_ends_a_leak() -> None:
    truth = _tube()
    leak = truth.copy()
    leak[9:12, 7:13, 7:13] = True  # the previous result leaked into slices 9..11
    prev = np.where(leak, 6.0, -6.0).astype(np.float32)[None]
    prev[0, 3, 5:15, 5:15] = 6.0  # its largest slice (the core) is 3
    calls: list = []
    empty = np.full((1, 20, 20), -6.0, np.float32)  # the click removed the object on 9
    res = propagate(_segmenter(truth, calls), empty, np.ones(1), 9, 12, previous=prev)
    assert calls == []  # nothing to propagate from an empty slice
    assert not (res.logits[0, 9:] > 0).any()  # away from the core: cleared
    np.testing.assert_array_equal(res.logits[0, :9], prev[0, :9])  # towards the core: kept
    assert res.ranges == ((3, 8),)


def test_a_changed_shape_far_away_is_confirmed_closer() -> None:
    truth = _tube()  # the object: slices 3..8
    seen = truth.copy()
    seen[10:12, 9:12, 9:12] = True  # a small stable neighbour on 10..11, inside the box
    calls: list = []
    refine = PropagationConfig(refine_changes=True)
    res = propagate(_segmenter(seen, calls), _start(truth, 5), np.ones(1), 5, 12, config=refine,
                    spacing=(1.0, 1.0, 1.0))  # fmt: skip
    # up: 8 agrees (step 6 -> clipped to 11); 11 is accepted by the slice tests but its
    # 3x3 mask disagrees with 8's 6x6 (Dice 0.4) three slices away: dropped, 9 tried
    # (no object: an unstable blob, rejected) and the direction ends at 8
    assert calls == [8, 11, 9, 2, 4, 3]
    assert res.ranges == ((3, 8),)
    np.testing.assert_array_equal(res.logits[0] > 0, truth)
    res = propagate(_segmenter(seen, []), _start(truth, 5), np.ones(1), 5, 12,
                    spacing=(1.0, 1.0, 1.0))  # fmt: skip
    assert res.ranges == ((3, 11),)  # the default: the neighbour is taken for the object
