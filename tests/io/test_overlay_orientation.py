"""``--overlay`` draws a volume's slice as the browser app shows it (radiological
orientation), with prompts given in array indices."""

from __future__ import annotations

import numpy as np

from medseg.io.image import Image
from medseg.io.orientation import view_slice
from medseg.io.overlay import PALETTE, render_overlay

YELLOW, GREEN = [255, 255, 0], [0, 255, 0]


def _ras(shape: tuple[int, int, int]) -> Image:
    return Image(np.zeros(shape, np.float32), direction=np.diag([-1.0, -1.0, 1.0]))


def test_ras_overlay_is_flipped_like_the_app() -> None:
    image = _ras((2, 5, 6))
    labels = np.zeros((2, 5, 6), np.uint8)
    labels[1, 0, 0] = 1  # array voxel x=0, y=0 on slice z=1
    rgb = render_overlay(image, labels, slice_index=1, points=[(4, 3)], alpha=1.0)
    assert rgb.shape == (5, 6, 3)
    # shown at the bottom-right corner, as the app's axial view shows it
    assert np.argwhere((rgb == PALETTE[0]).all(-1)).tolist() == [[4, 5]]
    shown = view_slice(Image(labels, direction=image.direction), "axial", 1)
    assert np.argwhere(shown).tolist() == [[4, 5]]
    # the click at array (x=4, y=3) is drawn around view pixel (col 1, row 1)
    assert (rgb[1, 1] == GREEN).all() and not (rgb[3, 4] == GREEN).all()


def test_ras_overlay_box_corners() -> None:
    image = _ras((1, 8, 10))
    rgb = render_overlay(image, np.zeros((1, 8, 10), np.uint8), slice_index=0, boxes=[(1, 2, 3, 4)])
    ys, xs = np.nonzero((rgb == YELLOW).all(-1))
    # the perimeter just around array x 1..3, y 2..4 -> array x 0..4, y 1..5 -> view
    # columns 9 - 4 .. 9 - 0 and rows 7 - 5 .. 7 - 1
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (5, 9, 2, 6)


def test_2d_and_lps_overlays_are_drawn_as_stored() -> None:
    for image in (Image(np.zeros((4, 5), np.float32)), Image(np.zeros((1, 4, 5), np.float32))):
        labels = np.zeros(image.shape, np.uint8)
        labels[..., 1, 2] = 2
        rgb = render_overlay(image, labels, slice_index=0 if image.ndim == 3 else None, alpha=1.0)
        assert np.argwhere((rgb == PALETTE[1]).all(-1)).tolist() == [[1, 2]]


def test_first_label_colour_stands_out_on_pink_tissue() -> None:
    # H&E pink/purple: the first label colour is cyan, far from red in hue
    assert PALETTE[0].tolist() == [0, 229, 255]
    he_pink = np.array([230, 150, 190])
    assert int(np.abs(PALETTE[0].astype(int) - he_pink).sum()) > 250
