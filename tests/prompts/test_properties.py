"""Hypothesis properties of prompt validation (``medseg.prompts.types``).

Any box, 3D box, point list or slice index either passes (and then satisfies the documented
rules: finite, ``x0 < x1``, ``y0 < y1``, inside ``0..W`` x ``0..H``, points on a pixel) or
raises ``PromptError``; never a bare IndexError/ValueError/TypeError/OverflowError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medseg.errors import PromptError
from medseg.prompts import validate_box, validate_box3d, validate_points, validate_slice_index

PROPS = settings(max_examples=200, deadline=None, derandomize=True, database=None)
H, W, Z = 20, 30, 5

NUMBERS = st.one_of(
    st.floats(-50, 80, allow_nan=False),
    st.integers(-50, 80),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 10**400, -(10**400), 1e308]),
)
JUNK = st.one_of(st.none(), st.text(max_size=3), st.booleans(), st.just({"x": 1}))
ITEMS = st.one_of(NUMBERS, NUMBERS, NUMBERS, JUNK, st.lists(NUMBERS, max_size=3))
# right and wrong lengths, nested lists (wrong dimensionality), and non-sequences
VECTORS = st.one_of(st.lists(ITEMS, max_size=8), st.lists(NUMBERS, min_size=4, max_size=6), JUNK)


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or None when it raised ``PromptError``."""
    try:
        return fn(*args)
    except PromptError as exc:
        assert str(exc)  # the message names the problem
        return None


@PROPS
@given(VECTORS)
def test_box_passes_only_when_valid(box: object) -> None:
    b = _call(validate_box, box, (H, W))
    if b is not None:
        x0, y0, x1, y1 = b
        assert b.shape == (4,) and b.dtype == np.float64
        assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H


@PROPS
@given(st.lists(NUMBERS, min_size=4, max_size=4))
def test_box_of_four_numbers(box: list) -> None:
    def as_float(v: float) -> float:
        try:
            return float(v)
        except OverflowError:  # 10**400: not a finite float
            return np.inf

    x0, y0, x1, y1 = (as_float(v) for v in box)
    finite = all(np.isfinite([x0, y0, x1, y1]))
    valid = finite and 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
    if valid:
        np.testing.assert_array_equal(validate_box(box, (H, W)), [x0, y0, x1, y1])
    else:
        with pytest.raises(PromptError):
            validate_box(box, (H, W))


@PROPS
@given(VECTORS)
def test_box3d_passes_only_when_valid(box: object) -> None:
    b = _call(validate_box3d, box, (Z, H, W))
    if b is not None:
        x0, y0, z0, x1, y1, z1 = b
        assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H and 0 <= z0 <= z1 <= Z - 1


POINTS = st.one_of(
    st.lists(st.lists(NUMBERS, min_size=2, max_size=2), max_size=4),
    st.lists(st.lists(ITEMS, max_size=3), max_size=3),
    st.lists(NUMBERS, max_size=4),
    JUNK,
)
LABELS = st.one_of(st.none(), st.lists(st.one_of(st.integers(-1, 2), JUNK), max_size=5), JUNK)


@PROPS
@given(POINTS, LABELS)
def test_points_pass_only_when_valid(points: object, labels: object) -> None:
    out = _call(validate_points, points, labels, (H, W))
    if out is not None:
        pts, lab = out
        assert pts.ndim == 2 and pts.shape[1] == 2 and len(pts) > 0
        assert lab.shape == (len(pts),) and set(lab.tolist()) <= {0, 1}
        assert np.all((pts[:, 0] >= 0) & (pts[:, 0] < W) & (pts[:, 1] >= 0) & (pts[:, 1] < H))


@PROPS
@given(st.one_of(st.integers(-10, 10), st.floats(), JUNK, st.just(10**30)))
def test_slice_index(index: object) -> None:
    out = _call(validate_slice_index, index, Z)
    if out is not None:
        assert isinstance(out, int) and 0 <= out < Z and out == index


def test_inverted_and_out_of_range_boxes_are_refused_with_their_reason() -> None:
    with pytest.raises(PromptError, match="inverted"):
        validate_box([10, 5, 2, 8], (H, W))
    with pytest.raises(PromptError, match="outside"):
        validate_box([0, 0, W + 1, 5], (H, W))
    with pytest.raises(PromptError, match="NaN"):
        validate_box([0, float("nan"), 4, 5], (H, W))
