"""``label_map_from_logits``: exact label maps on small hand-built masks and logits."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.inference import result
from medseg.inference.result import label_map_from_logits


def test_one_object_is_its_mask() -> None:
    masks = np.array([[[True, False], [False, True]]])
    out = label_map_from_logits(masks, np.zeros((1, 2, 2), np.float32))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[1, 0], [0, 1]])


def test_no_object_gives_background_of_the_spatial_shape() -> None:
    out = label_map_from_logits(np.zeros((0, 2, 3), bool), np.zeros((0, 2, 3), np.float32))
    assert out.shape == (2, 3) and out.dtype == np.uint8 and not out.any()


@pytest.mark.parametrize("slab", [1, 2, 1 << 22], ids=["one-element", "part-row", "whole"])
def test_overlaps_go_to_the_highest_logit_whatever_the_slab(
    monkeypatch: pytest.MonkeyPatch, slab: int
) -> None:
    """(N=2, Z=3, Y=1, X=2): object 2 wins where both cover and its logit is higher; slabs
    of one z slice (slab smaller than a slice) or of the whole volume give the same map."""
    monkeypatch.setattr(result, "_SLAB_ELEMENTS", slab)
    masks = np.array([
        [[[1, 1]], [[1, 0]], [[0, 0]]],
        [[[0, 1]], [[1, 1]], [[0, 1]]],
    ], bool)  # fmt: skip
    logits = np.array([
        [[[2.0, 5.0]], [[3.0, -1.0]], [[-1.0, -1.0]]],
        [[[-1.0, 6.0]], [[1.0, 4.0]], [[-1.0, 0.5]]],
    ], np.float32)  # fmt: skip
    out = label_map_from_logits(masks, logits)
    np.testing.assert_array_equal(out, [[[1, 2]], [[1, 2]], [[0, 2]]])


def test_256_objects_need_uint16() -> None:
    masks = np.zeros((256, 1, 256), bool)
    masks[np.arange(256), 0, np.arange(256)] = True
    out = label_map_from_logits(masks, np.ones(masks.shape, np.float32))
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out[0], np.arange(1, 257))
