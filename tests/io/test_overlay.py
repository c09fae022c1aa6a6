"""Overlay drawing: scribbles (polylines and stroke masks) drawn like clicks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import medseg.io as mio
from medseg.cli.segment_output import save_segment_overlay
from medseg.io.image import Image, LabelMap
from medseg.io.overlay import render_overlay, scribble_pixels

GREEN, RED = [0, 255, 0], [255, 0, 0]


def test_scribble_polylines_are_drawn() -> None:
    img = np.zeros((6, 8), np.uint8)
    strokes = [{"points": [(1, 1), (4, 1), (4, 3)], "label": 1}, ([(7, 5), (9, 5)], 0)]
    rgb = render_overlay(img, np.zeros((6, 8), np.uint8), scribbles=strokes)
    green = np.argwhere((rgb == GREEN).all(-1)).tolist()
    assert green == [[1, 1], [1, 2], [1, 3], [1, 4], [2, 4], [3, 4]]
    assert np.argwhere((rgb == RED).all(-1)).tolist() == [[5, 7]]  # (9, 5) is clipped


def test_scribble_mask_is_drawn() -> None:
    masks = np.zeros((2, 4, 5), bool)
    masks[0, 1, 1:3] = True
    masks[1, 3, 4] = True
    pos, neg = scribble_pixels(masks, (4, 5))
    assert np.argwhere(pos).tolist() == [[1, 1], [1, 2]] and np.argwhere(neg).tolist() == [[3, 4]]


def test_segment_overlay_draws_scribbles(tmp_path: Path) -> None:
    image = Image(np.zeros((3, 6, 8), np.float32))
    labels = LabelMap(np.zeros((3, 6, 8), np.uint8))
    kw = {"scribbles": [{"points": [(2, 2), (5, 2)], "label": 0}], "slice_index": 1}
    save_segment_overlay(tmp_path / "o.png", image, labels, 1, kw)
    rgb = mio.load(tmp_path / "o.png").array
    assert np.argwhere((rgb == RED).all(-1)).tolist() == [[2, 2], [2, 3], [2, 4], [2, 5]]
