from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import InputError
from medseg.metrics import dice, iou
from medseg.metrics.overlap import as_mask, check_spacing


def _square(shift: int = 0, axis: int = 0) -> np.ndarray:
    m = np.zeros((10, 10), bool)
    m[2:6, 2:6] = True  # 16 pixels
    return np.roll(m, shift, axis=axis)


@pytest.mark.parametrize(
    ("shift", "want_dice", "want_iou"),
    [
        (0, 1.0, 1.0),
        (1, 2 * 12 / 32, 12 / 20),  # overlap 3 rows x 4 = 12, union 20
        (2, 2 * 8 / 32, 8 / 24),  # overlap 2 rows x 4 = 8, union 24
        (4, 0.0, 0.0),  # disjoint
    ],
)
def test_square_shifted(shift: int, want_dice: float, want_iou: float) -> None:
    a, b = _square(), _square(shift)
    assert dice(b, a) == pytest.approx(want_dice, abs=1e-12)
    assert iou(b, a) == pytest.approx(want_iou, abs=1e-12)
    assert dice(a, b) == dice(b, a)


def test_empty_rules() -> None:
    empty = np.zeros((4, 4), bool)
    full = np.ones((4, 4), bool)
    assert dice(empty, empty) == 1.0
    assert iou(empty, empty) == 1.0
    assert dice(empty, full) == 0.0
    assert dice(full, empty) == 0.0
    assert iou(full, empty) == 0.0


def test_integer_and_float_masks_mean_nonzero() -> None:
    a = np.array([[0, 1], [2, 0]], np.int32)  # 2 foreground pixels
    b = np.array([[0.0, 1.0], [0.0, 0.0]])
    assert dice(a, b) == pytest.approx(2 * 1 / 3)
    assert iou(a.astype(np.uint8), b) == pytest.approx(1 / 2)


def test_3d() -> None:
    a = np.zeros((6, 6, 6), np.uint8)
    a[1:4, 1:4, 1:4] = 1  # 27 voxels
    b = np.roll(a, 1, axis=2)  # overlap 3*3*2 = 18
    assert dice(b, a) == pytest.approx(36 / 54)
    assert iou(b, a) == pytest.approx(18 / 36)


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(InputError, match=r"\(3, 4\).*\(4, 3\)"):
        dice(np.zeros((3, 4)), np.zeros((4, 3)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_rejected(bad: float) -> None:
    m = np.zeros((3, 3))
    m[1, 1] = bad
    with pytest.raises(InputError, match="NaN or inf"):
        dice(m, np.zeros((3, 3)))
    with pytest.raises(InputError, match="NaN or inf"):
        iou(np.zeros((3, 3)), m)


def test_non_integer_and_bad_dtype_rejected() -> None:
    with pytest.raises(InputError, match="non-integer"):
        dice(np.full((2, 2), 0.5), np.zeros((2, 2)))
    with pytest.raises(InputError, match="dtype"):
        as_mask(np.array([["a", "b"]]))


def test_bool_input_is_not_copied() -> None:
    m = np.zeros((3, 3), bool)
    assert as_mask(m) is m


def test_check_spacing() -> None:
    assert check_spacing(None, 3) == (1.0, 1.0, 1.0)
    assert check_spacing([2, 0.5], 2) == (2.0, 0.5)
    with pytest.raises(InputError, match="3 values"):
        check_spacing((1, 1, 1), 2)
    for bad in [(1.0, 0.0), (1.0, -2.0), (1.0, np.nan), (np.inf, 1.0)]:
        with pytest.raises(InputError, match="positive"):
            check_spacing(bad, 2)


def test_from_counts_share_the_empty_rule() -> None:
    from medseg.metrics.overlap import dice_from_counts, iou_from_counts

    assert dice_from_counts(0, 0, 0) == 1.0 and iou_from_counts(0, 0, 0) == 1.0
    assert dice_from_counts(0, 3, 0) == 0.0 and iou_from_counts(0, 0, 3) == 0.0
    assert dice_from_counts(2, 3, 5) == 0.5 and iou_from_counts(2, 3, 5) == 2 / 6
