from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import PromptError
from medseg.prompts import (
    PromptSet,
    box_from_mask,
    validate_box,
    validate_box3d,
    validate_points,
    validate_slice_index,
)


def test_validate_box_accepts_inside_and_border_boxes() -> None:
    np.testing.assert_array_equal(validate_box((1, 2, 30, 40), (50, 60)), [1, 2, 30, 40])
    # exclusive end coordinates (x1 == W, y1 == H) are fine
    np.testing.assert_array_equal(validate_box([0, 0, 60, 50], (50, 60)), [0, 0, 60, 50])


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ((10, 10, 5, 20), "inverted"),
        ((10, 20, 30, 10), "inverted"),
        ((10, 10, 10, 20), "empty"),
        ((-1, 0, 10, 10), "outside"),
        ((0, 0, 61, 10), "outside"),
        ((0, 0, 10, 51), "outside"),
        ((0, 0, 10), "4 numbers"),
        ((0, 0, 10, float("nan")), "NaN"),
        (("a", 0, 1, 2), "4 numbers"),
    ],
)
def test_validate_box_rejects_bad_boxes(box: tuple, message: str) -> None:
    with pytest.raises(PromptError, match=message):
        validate_box(box, (50, 60))


def test_validate_box3d() -> None:
    np.testing.assert_array_equal(
        validate_box3d((1, 2, 3, 10, 12, 3), (8, 20, 30)), [1, 2, 3, 10, 12, 3]
    )
    with pytest.raises(PromptError, match="inverted"):
        validate_box3d((1, 2, 5, 10, 12, 3), (8, 20, 30))
    with pytest.raises(PromptError, match="outside the volume"):
        validate_box3d((1, 2, 3, 10, 12, 8), (8, 20, 30))
    with pytest.raises(PromptError, match="outside the image"):
        validate_box3d((1, 2, 3, 31, 12, 4), (8, 20, 30))


def test_validate_points() -> None:
    pts, lab = validate_points([(0, 0), (59.5, 49)], [1, 0], (50, 60))
    assert pts.shape == (2, 2) and lab.tolist() == [1, 0]
    _, lab = validate_points([(3, 4)], None, (50, 60))
    assert lab.tolist() == [1]
    with pytest.raises(PromptError, match="outside the image"):
        validate_points([(60, 10)], [1], (50, 60))
    with pytest.raises(PromptError, match="outside the image"):
        validate_points([(10, -1)], [1], (50, 60))
    with pytest.raises(PromptError, match="2 points but 1"):
        validate_points([(1, 1), (2, 2)], [1], (50, 60))
    with pytest.raises(PromptError, match="1 \\(foreground\\) or 0"):
        validate_points([(1, 1)], [2], (50, 60))
    with pytest.raises(PromptError, match="non-empty"):
        validate_points([], [], (50, 60))


def test_validate_slice_index() -> None:
    assert validate_slice_index(np.int64(3), 4) == 3
    for bad in (4, -1):
        with pytest.raises(PromptError, match="outside the volume"):
            validate_slice_index(bad, 4)
    with pytest.raises(PromptError, match="integer"):
        validate_slice_index(1.5, 4)
    with pytest.raises(PromptError, match="integer"):
        validate_slice_index(True, 4)


def test_box_from_mask() -> None:
    m = np.zeros((6, 8), bool)
    assert box_from_mask(m) is None
    m[2:4, 3:7] = True
    assert box_from_mask(m) == (3, 2, 6, 3)
    with pytest.raises(PromptError):
        box_from_mask(np.zeros((2, 2, 2)))


def test_prompt_set_kinds_and_counts() -> None:
    ps = PromptSet(boxes=np.zeros((2, 4)))
    assert ps.num_objects == 2 and ps.kinds == {"box"}
    ps = PromptSet(points=np.zeros((1, 3, 2)), point_labels=np.ones((1, 3)))
    assert ps.kinds == {"points"}
    with pytest.raises(PromptError, match="no prompt"):
        PromptSet()
    with pytest.raises(PromptError, match="disagree"):
        PromptSet(boxes=np.zeros((2, 4)), mask_input=np.zeros((1, 5, 5)))
    with pytest.raises(PromptError, match="together"):
        PromptSet(points=np.zeros((1, 3, 2)))
