"""Overlay PNGs: a display-windowed image with coloured masks and prompts drawn on it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.io.atomic import atomic_path
from medseg.io.image import Image
from medseg.io.orientation import orient_slice

__all__ = ["to_display_rgb", "render_overlay", "save_overlay", "scribble_pixels", "PALETTE"]

# Distinct colours for label values 1, 2, ... (cycled), as the browser app's: the first,
# cyan, stays visible on gray CT/MR and on red/pink H&E slides alike; red comes late.
PALETTE = np.array(
    [
        [0, 229, 255], [255, 225, 25], [60, 180, 75], [245, 130, 48], [67, 99, 216],
        [240, 50, 230], [188, 246, 12], [230, 25, 75], [145, 30, 180], [250, 190, 190],
    ],
    dtype=np.uint8,
)  # fmt: skip


def to_display_rgb(image: Image | np.ndarray, slice_index: int | None = None) -> np.ndarray:
    """A ``(H, W, 3)`` uint8 rendering of a 2D image, or of one slice of a 3D image.

    CT uses the soft-tissue window; other images are stretched between their 0.5 and 99.5
    percentiles; RGB images are shown as they are.
    """
    from medseg.io.intensity import display_window

    img = image if isinstance(image, Image) else Image(np.asarray(image))
    arr = img.array
    if img.ndim == 3:
        z = arr.shape[0] // 2 if slice_index is None else slice_index
        if not 0 <= z < arr.shape[0]:
            raise InputError(f"slice {z} is outside the volume (0..{arr.shape[0] - 1})")
        arr = arr[z]
    if img.channels:
        if arr.shape[-1] >= 3 and arr.dtype == np.uint8:
            return np.ascontiguousarray(arr[..., :3])
        arr = arr[..., :3] if arr.shape[-1] >= 3 else arr[..., 0]
    unit = display_window(arr, modality=img.modality)
    rgb = (unit * 255).round().astype(np.uint8)
    return np.repeat(rgb[..., None], 3, axis=-1) if rgb.ndim == 2 else rgb


def render_overlay(
    image: Image | np.ndarray,
    labels: np.ndarray,
    *,
    slice_index: int | None = None,
    boxes: Sequence[Sequence[float]] = (),
    points: Sequence[Sequence[float]] = (),
    point_labels: Sequence[int] = (),
    scribbles: Any = (),
    alpha: float = 0.45,
) -> np.ndarray:
    """Blend integer ``labels`` (same spatial shape as ``image``) over the image.

    Boxes are ``(x0, y0, x1, y1)`` (yellow); points ``(x, y)`` with labels 1 (green) or 0
    (red); scribbles are polylines ``{"points": [(x, y), ...], "label": 1 or 0}`` (or
    ``(points, label)``) or a ``(2, H, W)`` positive/negative stroke mask, drawn green
    (1) or red (0). All coordinates are array indices (x = column, y = row) of the drawn
    slice ``array[slice_index]``. The slice is shown as the browser app shows it
    (:func:`medseg.io.orientation.orient_slice`: a volume's radiological orientation, e.g.
    a RAS NIfTI upside-down and mirrored against its array order; 2D images as stored), so
    the PNG is ``(H, W, 3)`` uint8, or ``(W, H, 3)`` for a slice whose rows are the array's
    columns.
    """
    from skimage.draw import disk, rectangle_perimeter
    from skimage.segmentation import find_boundaries

    rgb = to_display_rgb(image, slice_index).astype(np.float32)
    lab = np.asarray(labels)
    if lab.ndim == 3:
        z = lab.shape[0] // 2 if slice_index is None else slice_index
        lab = lab[z]
    if lab.shape != rgb.shape[:2]:
        raise InputError(f"mask shape {lab.shape} does not match image shape {rgb.shape[:2]}")
    lab = lab.astype(np.int64)
    colours = PALETTE[(np.maximum(lab, 1) - 1) % len(PALETTE)].astype(np.float32)
    fg = lab > 0
    rgb[fg] = (1 - alpha) * rgb[fg] + alpha * colours[fg]
    edge = find_boundaries(lab, mode="inner") & fg
    rgb[edge] = colours[edge]
    h, w = lab.shape
    for box in boxes:
        x0, y0, x1, y1 = (round(float(v)) for v in box[:4])
        rr, cc = rectangle_perimeter((y0, x0), end=(y1, x1), shape=(h, w), clip=True)
        rgb[rr, cc] = (255, 255, 0)
    for i, pt in enumerate(points):
        positive = (point_labels[i] if i < len(point_labels) else 1) == 1
        rr, cc = disk((float(pt[1]), float(pt[0])), max(2.0, min(h, w) / 100), shape=(h, w))
        rgb[rr, cc] = (0, 255, 0) if positive else (255, 0, 0)
    positive, negative = scribble_pixels(scribbles, (h, w))
    rgb[positive] = (0, 255, 0)
    rgb[negative] = (255, 0, 0)
    out = rgb.clip(0, 255).astype(np.uint8)
    if isinstance(image, Image):
        out = np.ascontiguousarray(orient_slice(image, out))
    return out


def scribble_pixels(scribbles: Any, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Two bool ``(H, W)`` masks, positive and negative stroke pixels, from polylines
    (``{"points": [(x, y), ...], "label": 1 | 0}`` or ``(points, label)``) or a ``(2, H, W)``
    stroke mask; polyline points outside the image are clipped."""
    from skimage.draw import line

    h, w = shape
    if isinstance(scribbles, np.ndarray):
        if scribbles.shape != (2, h, w):
            raise InputError(f"scribble masks must be (2, {h}, {w}), got {scribbles.shape}")
        return scribbles[0].astype(bool), scribbles[1].astype(bool)
    masks = np.zeros((2, h, w), bool)
    for item in scribbles:
        pts, label = (item["points"], item.get("label", 1)) if isinstance(item, dict) else item
        xy = [(round(float(p[0])), round(float(p[1]))) for p in pts]
        m = masks[0 if int(label) == 1 else 1]
        for (x0, y0), (x1, y1) in zip(xy, xy[1:] or xy, strict=False):
            rr, cc = line(y0, x0, y1, x1)
            keep = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
            m[rr[keep], cc[keep]] = True
    return masks[0], masks[1]


def save_overlay(path: str | Path, image: Image | np.ndarray, labels: np.ndarray, **kwargs) -> Path:
    """Render with :func:`render_overlay` and write a PNG atomically; returns the path."""
    from PIL import Image as PILImage

    rgb = render_overlay(image, labels, **kwargs)
    path = Path(path)
    with atomic_path(path) as tmp:
        PILImage.fromarray(rgb).save(tmp, format="PNG")
    return path
