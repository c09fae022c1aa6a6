"""``medseg segment`` turns array-index prompts into the pixels of the slices the app
shows, and the label map back (medseg.cli.segment_view)."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.cli.segment_view import display_frame, prompts_to_view
from medseg.errors import PromptError
from medseg.io.image import Image, LabelMap

RAS = Image(
    np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5),
    spacing=(3.0, 2.0, 1.0),
    direction=np.diag([-1.0, -1.0, 1.0]),
)


def test_prompts_in_array_indices_become_view_pixels() -> None:
    masks = np.zeros((2, 4, 5), bool)
    masks[0, 0, 1] = True  # array x=1, y=0 -> view col 3, row 3
    kw = {
        "box": (0, 1, 2, 3),
        "points": [(1, 0), (4, 3)],
        "point_labels": [1, 0],
        "scribbles": [{"points": [(0, 0), (4, 3)], "label": 0}],
        "slice_index": 1,
    }
    got = prompts_to_view(RAS, kw)
    assert got["box"] == (2.0, 0.0, 4.0, 2.0)
    boxes = prompts_to_view(RAS, {"boxes": [(0, 1, 2, 3), (3, 0, 4, 1)]})["boxes"]
    assert boxes == [(2.0, 0.0, 4.0, 2.0), (0.0, 2.0, 1.0, 3.0)]
    assert prompts_to_view(RAS, {"box3d": (0, 1, 0, 2, 3, 1)})["box3d"] == (
        2.0,
        0.0,
        0,
        4.0,
        2.0,
        1,
    )
    assert got["points"] == [(3.0, 3.0), (0.0, 0.0)]
    assert got["scribbles"] == [{"points": [(4.0, 3.0), (0.0, 0.0)], "label": 0}]
    assert got["point_labels"] == [1, 0] and got["slice_index"] == 1
    turned = prompts_to_view(RAS, {"scribbles": masks})["scribbles"]
    assert np.argwhere(turned[0]).tolist() == [[3, 3]] and not turned[1].any()


def test_display_frame_segments_the_flipped_volume_and_writes_array_order() -> None:
    shown, kw, back = display_frame(RAS, {"box": (0, 1, 2, 3), "slice_index": 0})
    assert np.array_equal(shown.array, RAS.array[:, ::-1, ::-1])
    assert kw == {"box": (2.0, 0.0, 4.0, 2.0), "slice_index": 0}
    view_labels = np.zeros((2, 4, 5), np.uint8)
    view_labels[0, 0, 0] = 3  # view pixel (0, 0) of slice 0 = array x=4, y=3
    labels = back(LabelMap.like(shown, view_labels, label_names={3: "kidney"}))
    assert np.argwhere(labels.array).tolist() == [[0, 3, 4]]
    assert labels.spacing == RAS.spacing and np.array_equal(labels.direction, RAS.direction)
    assert labels.label_names == {3: "kidney"}


def test_images_shown_as_stored_are_not_touched() -> None:
    for image in (Image(np.zeros((4, 5), np.float32)), Image(np.zeros((2, 4, 5), np.float32))):
        kw = {"box": (0, 1, 2, 3)}
        shown, got, back = display_frame(image, kw)
        assert shown is image and got is kw
        labels = LabelMap.like(image, np.zeros(image.shape, np.uint8))
        assert back(labels) is labels


def test_prompt_errors_quote_the_given_array_indices() -> None:
    with pytest.raises(PromptError, match=r"box \(0\.0, 0\.0, 9\.0, 3\.0\) extends outside"):
        prompts_to_view(RAS, {"box": (0, 0, 9, 3), "slice_index": 0})
    with pytest.raises(PromptError, match=r"point \(5\.0, 1\.0\) is outside the image"):
        prompts_to_view(RAS, {"points": [(5, 1)], "slice_index": 0})
    with pytest.raises(PromptError, match=r"box3d z range 0\.\.2 is outside"):
        prompts_to_view(RAS, {"box3d": (0, 0, 0, 2, 2, 2)})
    # far edges x1 = W, y1 = H (allowed) stay on the border: pixel indices 0..W-1, 0..H-1
    assert prompts_to_view(RAS, {"box": (0, 0, 5, 4)})["box"] == (0.0, 0.0, 4.0, 3.0)
