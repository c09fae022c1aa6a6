"""Hypothesis properties of Dice and IoU (``medseg.metrics.dice`` / ``iou``).

The empty rule (``docs/metrics.md``): both masks empty -> 1.0, exactly one empty -> 0.0.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from medseg.errors import InputError
from medseg.metrics import dice, iou

PROPS = settings(max_examples=150, deadline=None, derandomize=True, database=None)
SHAPES = array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=10)


@st.composite
def mask_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Two boolean masks of one random shape."""
    shape = draw(SHAPES)
    return draw(arrays(bool, shape)), draw(arrays(bool, shape))


@PROPS
@given(mask_pairs())
def test_symmetric_and_bounded(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    for metric in (dice, iou):
        value = metric(a, b)
        assert value == metric(b, a)
        assert 0.0 <= value <= 1.0


@PROPS
@given(mask_pairs())
def test_values_match_the_definitions(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    inter, na, nb = int((a & b).sum()), int(a.sum()), int(b.sum())
    union = int((a | b).sum())
    if na + nb == 0:
        assert dice(a, b) == iou(a, b) == 1.0
    elif na == 0 or nb == 0:
        assert dice(a, b) == iou(a, b) == 0.0
    else:
        assert dice(a, b) == pytest.approx(2 * inter / (na + nb))
        assert iou(a, b) == pytest.approx(inter / union)
        # Dice = 2 IoU / (1 + IoU)
        assert dice(a, b) == pytest.approx(2 * iou(a, b) / (1 + iou(a, b)))


@PROPS
@given(arrays(bool, SHAPES))
def test_identical_masks_score_one(mask: np.ndarray) -> None:
    """1.0 for identical masks, non-empty or (by the empty rule) empty."""
    assert dice(mask, mask.copy()) == 1.0
    assert iou(mask, mask.copy()) == 1.0


@PROPS
@given(arrays(np.int16, SHAPES, elements=st.integers(-3, 3)))
def test_labels_count_as_their_nonzero_mask(labels: np.ndarray) -> None:
    mask = labels != 0
    assert dice(labels, mask) == 1.0
    assert dice(labels, ~mask) == (1.0 if mask.size == 0 else dice(mask, ~mask))


@PROPS
@given(arrays(bool, SHAPES), st.sampled_from([np.nan, np.inf, 0.5]))
def test_non_mask_floats_raise_input_error(mask: np.ndarray, bad: float) -> None:
    floats = mask.astype(np.float64)
    floats.flat[0] = bad
    for metric in (dice, iou):
        with pytest.raises(InputError):
            metric(floats, mask)


def test_shape_mismatch_raises_input_error() -> None:
    with pytest.raises(InputError, match=r"\(2, 3\).*\(3, 2\)"):
        dice(np.ones((2, 3), bool), np.ones((3, 2), bool))
