"""Display orientation of volumes: one rule for the browser app, ``--overlay`` and the CLI.

A volume ``(Z, Y, X)`` is shown as axial, coronal and sagittal stacks of 2D slices in the
radiological convention, whatever order the file stores its axes in: the image's direction
cosines say which array axis runs along which patient axis (LPS), and each view picks

- ``axial``: slices along S/I, rows anterior to posterior, columns patient right to left
  (the patient's left on the screen's right);
- ``coronal``: slices along A/P, rows superior to inferior, columns right to left;
- ``sagittal``: slices along R/L, rows superior to inferior, columns anterior to posterior.

:func:`view_axes` gives, per view, the array axes of slices, rows and columns and whether
rows/columns run backwards along their array axis. Slice ``i`` of a view is index ``i``
along its ``depth`` axis (never reversed). Oblique volumes use the nearest patient axis;
when two array axes would claim the same one, the array order is used as it is. 2D images
have the ``axial`` view only, slice 0, shown as stored.

Coordinates: prompts everywhere in medseg (CLI, Python API, what the app shows and copies)
are 0-based **array indices** ``(x, y[, z])`` = (column, row[, slice]) of the array as
stored; a view pixel ``(col, row)`` on slice ``i`` is converted with
:func:`view_to_array` / :func:`array_to_view` (integer pixel indices: a reversed axis maps
``k`` to ``n - 1 - k``). :func:`slice_view` is the view whose slices are the array's own
``z`` slices, the one ``medseg segment --slice`` and ``--overlay`` use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from medseg.errors import InputError
from medseg.io.image import Image

__all__ = [
    "VIEWS",
    "View",
    "view_axes",
    "view_shape",
    "oriented",
    "unoriented",
    "view_slice",
    "view_image",
    "slice_view",
    "view_to_array",
    "array_to_view",
    "box_to_view",
    "orient_slice",
]

View = Literal["axial", "coronal", "sagittal"]
VIEWS: tuple[str, ...] = ("axial", "coronal", "sagittal")
# Per view: (physical axis of the slices, of the rows, of the columns) and the LPS sign the
# rows/columns must grow towards (x = 0: +L, y = 1: +P, z = 2: +S).
_LAYOUT = {
    "axial": (2, (1, +1), (0, +1)),
    "coronal": (1, (2, -1), (0, +1)),
    "sagittal": (0, (2, -1), (1, +1)),
}
_IDENTITY = {"axial": (0, 1, 2, False, False), "coronal": (1, 0, 2, True, False),
             "sagittal": (2, 0, 1, True, False)}  # fmt: skip
_PLAIN = {"depth": 0, "rows": 1, "cols": 2, "flip_rows": False, "flip_cols": False}


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
    """``{"depth", "rows", "cols": array axis, "flip_rows", "flip_cols": bool}`` of ``view``
    (2D images: ``depth`` None, rows 0, cols 1, no flips)."""
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
    """``(slices, rows, cols)`` of ``view`` (2D images: ``(1, H, W)``)."""
    ax = view_axes(image, view)
    if image.ndim == 2:
        return (1, *image.shape)
    return tuple(int(image.shape[ax[k]]) for k in ("depth", "rows", "cols"))  # type: ignore[return-value]


def oriented(arr: np.ndarray, ax: dict[str, Any], channels: bool = False) -> np.ndarray:
    """A ``(Z, Y, X[, C])`` array as ``(depth, rows, cols[, C])`` of the view ``ax`` (a
    :func:`view_axes` dict), flips applied; a view, not a copy."""
    order = [ax["depth"], ax["rows"], ax["cols"]] + ([3] if channels else [])
    out = arr.transpose(order)
    if ax["flip_rows"]:
        out = out[:, ::-1]
    if ax["flip_cols"]:
        out = out[:, :, ::-1]
    return out


def unoriented(arr: np.ndarray, ax: dict[str, Any], channels: bool = False) -> np.ndarray:
    """The inverse of :func:`oriented`: a ``(depth, rows, cols[, C])`` view array back in
    the array's ``(Z, Y, X[, C])`` order."""
    if ax["flip_rows"]:
        arr = arr[:, ::-1]
    if ax["flip_cols"]:
        arr = arr[:, :, ::-1]
    order = [ax["depth"], ax["rows"], ax["cols"]]
    inverse = [order.index(a) for a in range(3)] + ([3] if channels else [])
    return arr.transpose(inverse)


def view_slice(image: Image, view: str, index: int) -> np.ndarray:
    """Slice ``index`` of ``view``: ``(rows, cols)`` or ``(rows, cols, C)``."""
    depth = view_shape(image, view)[0]
    if not 0 <= int(index) < depth:
        raise InputError(f"{view} slice {index} is outside the image (0..{depth - 1})")
    if image.ndim == 2:
        return image.array
    return oriented(image.array, view_axes(image, view), image.channels)[int(index)]


def view_image(image: Image, view: str) -> Image:
    """The volume re-stacked so that its axial slices are the slices of ``view`` (the
    image itself when the view is the array order; geometry: spacing only)."""
    _check_view(image, view)
    if image.ndim == 2:
        return image
    ax = view_axes(image, view)
    if ax == _PLAIN:
        return image
    arr = np.ascontiguousarray(oriented(image.array, ax, image.channels))
    spacing = tuple(image.spacing[ax[k]] for k in ("depth", "rows", "cols"))
    return Image(
        array=arr,
        spacing=spacing,
        modality=image.modality,
        channels=image.channels,
        meta={"view": view, "source": image.meta.get("path")},
    )


def slice_view(image: Image) -> str:
    """The view whose slice ``i`` is the array's slice ``z = i`` (``array[i]``): ``axial``
    for 2D images and for volumes stored axially, e.g. ``sagittal`` for a sagittal stack."""
    if image.ndim == 2:
        return "axial"
    return next(v for v in VIEWS if view_axes(image, v)["depth"] == 0)


def _frame(image: Image | Sequence[int], view: str | dict[str, Any]) -> tuple[tuple, dict]:
    """(spatial shape, view_axes dict) of ``image`` (or a shape, with a dict ``view``)."""
    if isinstance(image, Image):
        return tuple(image.shape), view if isinstance(view, dict) else view_axes(image, view)
    if not isinstance(view, dict):
        raise InputError("give the view_axes dict of the view with a bare shape")
    return tuple(int(n) for n in image), view


def view_to_array(
    image: Image | Sequence[int], view: str | dict[str, Any], col: float, row: float, index: int = 0
) -> tuple[float, ...]:
    """Array indices ``(x, y)`` (2D) or ``(x, y, z)`` (3D) of pixel ``(col, row)`` on slice
    ``index`` of ``view`` (a name, or a :func:`view_axes` dict when ``image`` is a bare
    spatial shape)."""
    shape, ax = _frame(image, view)
    idx = [0.0] * len(shape)
    if ax["depth"] is not None:
        idx[ax["depth"]] = float(index)
    idx[ax["rows"]] = shape[ax["rows"]] - 1 - row if ax["flip_rows"] else row
    idx[ax["cols"]] = shape[ax["cols"]] - 1 - col if ax["flip_cols"] else col
    return tuple(float(v) for v in idx[::-1])


def array_to_view(
    image: Image | Sequence[int], view: str | dict[str, Any], x: float, y: float, z: int = 0
) -> tuple[float, float, int]:
    """``(col, row, slice)`` of ``view`` showing array voxel ``(x, y[, z])`` (the inverse
    of :func:`view_to_array`; 2D: slice 0)."""
    shape, ax = _frame(image, view)
    idx = [float(x), float(y)] + ([float(z)] if len(shape) == 3 else [])
    idx = idx[::-1]  # array axis order
    row, col = idx[ax["rows"]], idx[ax["cols"]]
    row = shape[ax["rows"]] - 1 - row if ax["flip_rows"] else row
    col = shape[ax["cols"]] - 1 - col if ax["flip_cols"] else col
    depth = 0 if ax["depth"] is None else round(idx[ax["depth"]])
    return float(col), float(row), depth


def box_to_view(
    image: Image | Sequence[int], view: str | dict[str, Any], box: Sequence[float], z: int = 0
) -> tuple[float, float, float, float]:
    """An array box ``(x0, y0, x1, y1)`` on slice ``z`` as ``(c0, r0, c1, r1)`` of
    ``view`` (corners converted, then ordered so that ``c0 <= c1`` and ``r0 <= r1``)."""
    a = array_to_view(image, view, box[0], box[1], z)
    b = array_to_view(image, view, box[2], box[3], z)
    return min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])


def orient_slice(image: Image, arr: np.ndarray) -> np.ndarray:
    """A ``(Y, X[, C])`` array of one array slice (``array[z]``) as :func:`slice_view`
    shows it (2D images and axially stored volumes without flips: unchanged)."""
    if image.ndim == 2:
        return arr
    ax = view_axes(image, slice_view(image))
    out = arr if ax["rows"] == 1 else arr.swapaxes(0, 1)
    if ax["flip_rows"]:
        out = out[::-1]
    if ax["flip_cols"]:
        out = out[:, ::-1]
    return out
