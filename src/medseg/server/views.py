"""Slice geometry of the three views and display windowing of slices.

The orientation rule (which array axes a view's slices, rows and columns run along, and
which are reversed for the radiological convention) lives in :mod:`medseg.io.orientation`,
so that ``--overlay`` (:mod:`medseg.io.overlay`) draws slices as the app shows them; it is
re-exported here. The browser app gets :func:`view_axes` of each view, and converts a view
pixel to the array indices ``(x, y[, z])`` that the CLI and the Python API take, showing
those in its cursor readout and "copy as CLI" line. The HTTP API's prompts are pixels of a
view's slice (the model segments the view images of
:func:`medseg.inference.view_frame.segmented_image`, the Predictor's display-frame rule).
"""

from __future__ import annotations

import numpy as np

from medseg.errors import InputError
from medseg.io.image import Image
from medseg.io.intensity import CT_WINDOWS
from medseg.io.orientation import (
    VIEWS,
    View,
    view_axes,
    view_image,
    view_shape,
    view_slice,
)

__all__ = [
    "VIEWS",
    "View",
    "view_axes",
    "view_shape",
    "view_slice",
    "view_image",
    "auto_window",
    "window_names",
    "default_window",
    "resolve_window",
    "render_slice",
    "looks_like_ct",
]

_MAX_SAMPLES = 2_000_000


def looks_like_ct(image: Image) -> bool:
    """CT by modality, or a gray image of unknown modality whose values look like HU."""
    if image.modality.upper() == "CT":
        return True
    if image.channels or image.modality not in ("unknown", "") or image.array.dtype == np.uint8:
        return False
    flat = image.array.ravel()[:: max(1, image.array.size // _MAX_SAMPLES)]
    return bool(flat.size and float(flat.min()) <= -900 and float(flat.max()) >= 200)


def window_names(image: Image) -> list[str]:
    """Window presets offered for ``image``: CT presets plus ``auto``, else ``auto`` only."""
    if image.is_rgb:
        return ["original"]
    return [*CT_WINDOWS, "auto"] if looks_like_ct(image) else ["auto"]


def default_window(image: Image) -> str:
    """``soft_tissue`` for CT, ``original`` for RGB pictures, ``auto`` otherwise."""
    if image.is_rgb:
        return "original"
    return "soft_tissue" if looks_like_ct(image) else "auto"


def auto_window(image: Image) -> tuple[float, float]:
    """``(level, width)`` spanning the 0.5–99.5 percentiles (8-bit data: 0..255)."""
    arr = image.array
    if arr.dtype == np.uint8:
        return 127.5, 255.0
    flat = arr.ravel()
    sample = np.asarray(flat[:: max(1, flat.size // _MAX_SAMPLES)], dtype=np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.5, 1.0
    lo, hi = np.percentile(sample, [0.5, 99.5])
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max())
    width = max(float(hi - lo), 1e-6)
    return float(lo + width / 2), width


def resolve_window(
    image: Image, window: str | None, level: float | None, width: float | None
) -> tuple[float, float] | None:
    """``(low, high)`` display range, or None to show an RGB picture as it is.

    An explicit ``level`` and ``width`` win over ``window`` (a preset name, ``auto`` or
    ``original``); without either, :func:`default_window` is used.
    """
    if (level is None) != (width is None):
        raise InputError("give both level and width, or neither")
    if level is not None and width is not None:
        if not (np.isfinite(level) and np.isfinite(width)) or width <= 0:
            raise InputError(f"window width must be positive and finite, got {width}")
        return level - width / 2, level + width / 2
    name = window or default_window(image)
    if name == "original" and image.is_rgb:
        return None
    if name in ("auto", "original"):
        lev, wid = auto_window(image)
        return lev - wid / 2, lev + wid / 2
    if name in CT_WINDOWS:
        w = CT_WINDOWS[name]
        return w.low, w.high
    raise InputError(f"unknown window {name!r}; use one of {sorted(CT_WINDOWS)}, auto, original")


def render_slice(
    image: Image, view: str, index: int, rng: tuple[float, float] | None
) -> np.ndarray:
    """A uint8 display slice: gray ``(rows, cols)`` or RGB ``(rows, cols, 3)``."""
    sl = view_slice(image, view, index)
    if image.channels:
        sl = sl[..., :3] if sl.shape[-1] >= 3 else sl[..., 0]
        if rng is None and sl.dtype == np.uint8:
            return np.ascontiguousarray(sl)
    if rng is None:
        rng = (float(np.min(sl)), float(np.max(sl)) or 1.0)
    low, high = rng
    scaled = (np.asarray(sl, np.float32) - low) * (255.0 / max(high - low, 1e-6))
    return np.clip(np.nan_to_num(scaled), 0, 255).round().astype(np.uint8)
