"""A fake box-prompted segmenter and a tube volume for the 3D propagation tests
(``tests/inference/test_propagation*.py``): fast and exact instead of a model."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def tube(depth: int = 12, first: int = 3, last: int = 8) -> np.ndarray:
    """(Z, 20, 20) object: a square 6x6 (rows/columns 7..12) in slices first..last."""
    vol = np.zeros((depth, 20, 20), bool)
    vol[first : last + 1, 7:13, 7:13] = True
    return vol


def segmenter(
    truth: np.ndarray, calls: list, count_boxes: bool = False
) -> Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Fake model: logits +6 for the truth inside the box, -6 elsewhere; a box holding no
    object gives a soft blob (+0.5 in the box centre, unstable), as box-prompted SAM models
    do. Each call appends ``z`` to ``calls`` (``(z, number of boxes)`` with ``count_boxes``)."""

    def segment(z: int, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append((z, len(boxes)) if count_boxes else z)
        out = np.full((len(boxes), *truth.shape[1:]), -6.0, np.float32)
        for j, (x0, y0, x1, y1) in enumerate(np.round(boxes).astype(int)):
            inside = np.zeros(truth.shape[1:], bool)
            inside[y0 : y1 + 1, x0 : x1 + 1] = True
            obj = truth[z] & inside
            if obj.any():
                out[j][obj] = 6.0
            else:
                cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
                out[j, cy - 2 : cy + 3, cx - 2 : cx + 3] = 0.5
        return out, np.full(len(boxes), 0.9, np.float32)

    return segment


def start_logits(truth: np.ndarray, z: int) -> np.ndarray:
    """``(1, H, W)`` logits of the truth on slice ``z`` (+6 inside, -6 outside)."""
    return np.where(truth[z], 6.0, -6.0).astype(np.float32)[None]
