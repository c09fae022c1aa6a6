"""Slice geometry of the three views and display windowing of slices.

A volume ``(Z, Y, X)`` is shown as axial, coronal and sagittal stacks of 2D slices in the
radiological convention, whatever order the file stores its axes in: the image's direction
cosines say which array axis runs along which patient axis (LPS), and each view picks

- ``axial``: slices along S/I, rows anterior to posterior, columns patient right to left
  (the patient's left on the screen's right);
- ``coronal``: slices along A/P, rows superior to inferior, columns right to left;
- ``sagittal``: slices along R/L, rows superior to inferior, columns anterior to posterior.

:func:`view_axes` gives, per view, the array axes of slices, rows and columns and whether
rows/columns run backwards along their array axis; the browser app gets the same table, so
prompt coordinates (pixels of a view's slice) mean the same on both sides. Slice ``i`` of a
view is index ``i`` along its ``depth`` axis. Oblique volumes use the nearest patient axis;
when two array axes would claim the same one, the array order is used as it is. 2D images
have the ``axial`` view only, slice 0, shown as stored.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from medseg.errors import InputError
from medseg.io.image import Image
from medseg.io.intensity import CT_WINDOWS

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

View = Literal["axial", "coronal", "sagittal"]
VIEWS: tuple[str, ...] = ("axial", "coronal", "sagittal")
_MAX_SAMPLES = 2_000_000
# Per view: (physical axis of the slices, of the rows, of the columns) and the LPS sign the
# rows/columns must grow towards (x = 0: +L, y = 1: +P, z = 2: +S).
_LAYOUT = {
    "axial": (2, (1, +1), (0, +1)),
    "coronal": (1, (2, -1), (0, +1)),
    "sagittal": (0, (2, -1), (1, +1)),
}
_IDENTITY = {"axial": (0, 1, 2, False, False), "coronal": (1, 0, 2, True, False),
             "sagittal": (2, 0, 1, True, False)}  # fmt: skip


def _check_view(image: Image, view: str) -> None:
    if view not in VIEWS:
        raise InputError(f"unknown view {view!r}; use one of {', '.join(VIEWS)}")
    if image.ndim == 2 and view != "axial":
        raise InputError(f"a 2D image has only the axial view, not {view!r}")


def _physical(image: Image) -> list[tuple[int, float]] | None:
    """Per array axis ``(physical axis, sign)``, or None when two axes share one."""
    out = []
    for a in range(3):
        column = np.asarray(image.direction)[:, 2 - a]  # array axis a = ITK index axis 2 - a
        k = int(np.argmax(np.abs(column)))
        out.append((k, 1.0 if column[k] >= 0 else -1.0))
    return out if len({k for k, _ in out}) == 3 else None


def view_axes(image: Image, view: str) -> dict[str, Any]:
    """``{"depth", "rows", "cols": array axis, "flip_rows", "flip_cols": bool}`` of ``view``."""
    _check_view(image, view)
    if image.ndim == 2:
        return {"depth": None, "rows": 0, "cols": 1, "flip_rows": False, "flip_cols": False}
    phys = _physical(image)
    if phys is None:
        d, r, c, fr, fc = _IDENTITY[view]
        return {"depth": d, "rows": r, "cols": c, "flip_rows": fr, "flip_cols": fc}
    axis_of = {k: (a, s) for a, (k, s) in enumerate(phys)}
    slices, (row_k, row_sign), (col_k, col_sign) = _LAYOUT[view]
    (r, rs), (c, cs) = axis_of[row_k], axis_of[col_k]
    return {"depth": axis_of[slices][0], "rows": r, "cols": c,
            "flip_rows": rs != row_sign, "flip_cols": cs != col_sign}  # fmt: skip


def view_shape(image: Image, view: str) -> tuple[int, int, int]:
    """``(slices, rows, cols)`` of ``view``."""
    ax = view_axes(image, view)
    if image.ndim == 2:
        return (1, *image.shape)
    return tuple(int(image.shape[ax[k]]) for k in ("depth", "rows", "cols"))  # type: ignore[return-value]


def _oriented(arr: np.ndarray, ax: dict[str, Any], channels: bool) -> np.ndarray:
    """``arr`` transposed to ``(depth, rows, cols[, C])`` with the view's flips."""
    order = [ax["depth"], ax["rows"], ax["cols"]] + ([3] if channels else [])
    out = arr.transpose(order)
    if ax["flip_rows"]:
        out = out[:, ::-1]
    if ax["flip_cols"]:
        out = out[:, :, ::-1]
    return out


def view_slice(image: Image, view: str, index: int) -> np.ndarray:
    """Slice ``index`` of ``view``: ``(rows, cols)`` or ``(rows, cols, C)``."""
    depth = view_shape(image, view)[0]
    if not 0 <= int(index) < depth:
        raise InputError(f"{view} slice {index} is outside the image (0..{depth - 1})")
    if image.ndim == 2:
        return image.array
    return _oriented(image.array, view_axes(image, view), image.channels)[int(index)]


def view_image(image: Image, view: str) -> Image:
    """The volume re-stacked so that its axial slices are the slices of ``view``."""
    _check_view(image, view)
    if image.ndim == 2:
        return image
    ax = view_axes(image, view)
    if ax == {"depth": 0, "rows": 1, "cols": 2, "flip_rows": False, "flip_cols": False}:
        return image
    arr = np.ascontiguousarray(_oriented(image.array, ax, image.channels))
    spacing = tuple(image.spacing[ax[k]] for k in ("depth", "rows", "cols"))
    return Image(
        array=arr,
        spacing=spacing,
        modality=image.modality,
        channels=image.channels,
        meta={"view": view, "source": image.meta.get("path")},
    )


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
