"""Scribble prompts: positive/negative scribbles as masks or polylines, validated.

A scribble is a set of pixels the user drew over the object (positive, label 1) or over the
background (negative, label 0). Coordinates follow :mod:`medseg.prompts.types`: ``(x, y)``
with ``x`` = column. :func:`validate_scribbles` turns any accepted form into one
``(2, H, W)`` boolean array (positive, negative) and raises
:class:`medseg.errors.PromptError` for anything it cannot use.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from medseg.errors import PromptError

__all__ = ["validate_scribbles"]


def _polyline_mask(points: Any, shape: tuple[int, int]) -> np.ndarray:
    from skimage.draw import line

    try:
        p = np.asarray(points, np.float64).reshape(-1, 2)
    except (TypeError, ValueError) as exc:
        raise PromptError(f"a scribble must be a list of (x, y) points, got {points!r}") from exc
    if len(p) == 0:
        raise PromptError("empty scribble: a scribble needs at least one point")
    if not np.all(np.isfinite(p)):
        raise PromptError("scribble points contain NaN or inf")
    h, w = shape
    bad = (p[:, 0] < 0) | (p[:, 0] >= w) | (p[:, 1] < 0) | (p[:, 1] >= h)
    if bad.any():
        raise PromptError(f"scribble point {tuple(p[np.argmax(bad)])} is outside the image "
                          f"(width {w}, height {h})")  # fmt: skip
    q = np.round(p).astype(np.int64)
    out = np.zeros(shape, bool)
    out[q[0, 1], q[0, 0]] = True
    for (x0, y0), (x1, y1) in itertools.pairwise(q):
        rr, cc = line(int(y0), int(x0), int(y1), int(x1))
        out[rr, cc] = True
    return out


def _scribble_item(item: Any) -> tuple[Any, int]:
    if isinstance(item, dict):
        points, label = item.get("points"), item.get("label", 1)
    elif hasattr(item, "points") and hasattr(item, "label"):
        points, label = item.points, item.label
    elif isinstance(item, (tuple, list)) and len(item) == 2 and np.ndim(item[1]) == 0:
        points, label = item
    else:
        raise PromptError(f"cannot read scribble {item!r}: give (points, label) or a dict")
    if label not in (0, 1):
        raise PromptError(f"scribble label must be 1 (foreground) or 0 (background), got {label}")
    return points, int(label)


def validate_scribbles(scribbles: Any, shape: tuple[int, int]) -> np.ndarray:
    """Scribbles as ``(2, H, W)`` bool (positive, negative) for an ``(H, W)`` image.

    Accepted: ``(2, H, W)`` array or a pair ``(positive_mask, negative_mask)`` of ``(H, W)``
    numpy masks (either may be None); ``{"positive": mask, "negative": mask}``; or a list of
    polylines: :class:`medseg.prompts.simulation.Scribble`, ``{"points": [(x, y), ...],
    "label": 1}`` or ``(points, label)``, consecutive points joined by straight lines.
    Raises ``PromptError`` for a scribble outside the image, a bad label or no scribble
    pixel at all.
    """
    h, w = shape
    if isinstance(scribbles, dict) and {"positive", "negative"} & set(scribbles):
        scribbles = (scribbles.get("positive"), scribbles.get("negative"))
    arr = scribbles if isinstance(scribbles, np.ndarray) else None
    is_pair = (
        isinstance(scribbles, (tuple, list))
        and len(scribbles) == 2
        and all(s is None or (isinstance(s, np.ndarray) and s.ndim == 2) for s in scribbles)
    )
    if arr is not None or is_pair:
        pair = [np.zeros(shape, bool) if s is None else np.asarray(s) for s in scribbles]
        if arr is not None and arr.shape != (2, h, w):
            raise PromptError(f"scribble masks must be (2, {h}, {w}), got {arr.shape}")
        if any(m.shape != (h, w) for m in pair):
            raise PromptError(f"scribble masks must have the image's shape {(h, w)}")
        out = np.stack([m > 0 for m in pair])
    else:
        if isinstance(scribbles, (str, bytes)) or not isinstance(scribbles, Sequence):
            raise PromptError(f"cannot read scribbles of type {type(scribbles).__name__}")
        out = np.zeros((2, h, w), bool)
        for item in scribbles:
            points, label = _scribble_item(item)
            out[1 - label] |= _polyline_mask(points, shape)
    if not out.any():
        raise PromptError("empty scribbles: no scribble pixel given")
    return out
