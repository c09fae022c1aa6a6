"""Hypothesis properties of the REST API's RLE codec (``medseg.server.encoding``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from medseg.errors import InputError
from medseg.server.encoding import MAX_RLE_SIZE, check_rle, rle_decode, rle_encode

# Deterministic in CI: the same examples every run, no example database.
PROPS = settings(max_examples=150, deadline=None, derandomize=True, database=None)
SHAPES = array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=12)


@PROPS
@given(arrays(bool, SHAPES))
def test_bool_masks_round_trip(mask: np.ndarray) -> None:
    enc = rle_encode(mask)
    out = rle_decode(enc["shape"], enc["values"], enc["counts"], dtype=np.uint8)
    assert out.shape == mask.shape
    np.testing.assert_array_equal(out.astype(bool), mask)
    assert sum(enc["counts"]) == mask.size
    # runs are maximal: neighbouring values differ, and no run is empty
    assert all(a != b for a, b in zip(enc["values"], enc["values"][1:], strict=False))
    assert all(c > 0 for c in enc["counts"])


@PROPS
@given(arrays(np.uint16, SHAPES, elements=st.integers(0, 65535)))
def test_label_maps_round_trip(labels: np.ndarray) -> None:
    enc = rle_encode(labels)
    out = rle_decode(enc["shape"], enc["values"], enc["counts"], dtype=np.uint16)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, labels)


INTS = st.one_of(
    st.integers(-5, 40),
    st.sampled_from([2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**30]),
)
JUNK = st.one_of(
    INTS,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.none(),
    st.lists(st.integers(0, 3), max_size=2),
)


@PROPS
@given(
    shape=st.lists(st.one_of(INTS, JUNK), max_size=4),
    values=st.lists(JUNK, max_size=6),
    counts=st.lists(JUNK, max_size=6),
)
def test_invalid_runs_raise_input_error_only(shape: list, values: list, counts: list) -> None:
    """Any run list decodes to an array of ``shape`` or raises ``InputError``, nothing else."""
    try:
        out = rle_decode(shape, values, counts)
    except InputError:
        return
    assert out.shape == tuple(int(s) for s in shape)
    assert out.size == sum(int(c) for c in counts)


@PROPS
@given(
    shape=st.lists(st.integers(0, 6), min_size=1, max_size=3),
    counts=st.lists(st.integers(-3, 300), min_size=0, max_size=8),
)
def test_counts_must_add_up_to_the_size(shape: list[int], counts: list[int]) -> None:
    values = [1] * len(counts)
    size = math.prod(shape)
    consistent = all(0 <= c <= size for c in counts) and sum(counts) == size
    consistent = consistent and len(counts) <= max(size, 1)
    if consistent:
        assert rle_decode(shape, values, counts).shape == tuple(shape)
    else:
        with pytest.raises(InputError):
            rle_decode(shape, values, counts)


def test_oversized_shape_is_refused_before_allocating() -> None:
    side = math.isqrt(MAX_RLE_SIZE) + 1
    with pytest.raises(InputError, match="more than"):
        check_rle([side, side], [0], [side * side])


def test_value_outside_dtype_is_refused() -> None:
    with pytest.raises(InputError, match=r"0\.\.255"):
        rle_decode([2], [256], [2], dtype=np.uint8)
