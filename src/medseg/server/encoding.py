"""Compact mask and label encodings used by the REST API.

RLE (run-length encoding) works for boolean masks and integer label maps alike: the array is
flattened in C order (row-major: for ``(Z, Y, X)`` the last axis varies fastest) and stored
as runs, ``values[i]`` repeated ``counts[i]`` times::

    {"encoding": "rle", "shape": [2, 3], "values": [0, 1, 0], "counts": [2, 3, 1]}

is ``[[0, 0, 1], [1, 1, 0]]``. PNG masks are 1-bit PNGs (base64 in JSON); a 3D block of
``n`` slices is one PNG of ``n * H`` rows.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from medseg.errors import InputError

__all__ = [
    "rle_encode",
    "rle_decode",
    "png_encode_mask",
    "png_decode_mask",
    "encode_mask",
    "png_bytes",
    "MAX_RLE_SIZE",
    "check_rle",
]

#: Largest array an RLE may describe (2**31 elements: far above any image medseg decodes).
MAX_RLE_SIZE = 2**31


def rle_encode(array: np.ndarray) -> dict[str, Any]:
    """Run-length encode a bool or integer array (see the module docstring)."""
    arr = np.asarray(array)
    flat = arr.ravel()
    if flat.dtype == bool:
        flat = flat.view(np.uint8)
    if flat.size == 0:
        return {"encoding": "rle", "shape": list(arr.shape), "values": [], "counts": []}
    starts = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1))
    counts = np.diff(np.concatenate((starts, [flat.size])))
    return {
        "encoding": "rle",
        "shape": [int(s) for s in arr.shape],
        "values": flat[starts].astype(np.int64).tolist(),
        "counts": counts.astype(np.int64).tolist(),
    }


def check_rle(
    shape: Sequence[int], values: Sequence[int], counts: Sequence[int]
) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """The one rule for a consistent RLE (used by :func:`rle_decode` and the request
    schema): integer shape of at most ``MAX_RLE_SIZE`` elements, as many values as counts,
    no more runs than elements, counts in ``0..size`` adding up to the size. Returns the
    shape and the values and counts as int64 arrays; raises ``InputError``."""
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"RLE shape must be integers ({exc})") from exc
    if any(s < 0 for s in shape):
        raise InputError(f"RLE shape must be non-negative, got {shape}")
    size = math.prod(shape)
    if size > MAX_RLE_SIZE:
        raise InputError(f"RLE shape {shape} has {size} elements, more than {MAX_RLE_SIZE}")
    try:
        vals = np.asarray(values, dtype=np.int64)
        cnts = np.asarray(counts, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"RLE values and counts must be 64-bit integers ({exc})") from exc
    if vals.ndim != 1 or vals.shape != cnts.shape:
        raise InputError(f"RLE has {vals.size} values but {cnts.size} counts")
    if cnts.size > max(size, 1):
        raise InputError(f"RLE has {cnts.size} runs, more than the {size} elements of {shape}")
    if cnts.size and (cnts.min() < 0 or cnts.max() > size):
        raise InputError(f"RLE counts must lie in 0..{size} (the size of shape {shape})")
    total = int(cnts.sum())  # <= size * size: no int64 overflow below MAX_RLE_SIZE
    if total != size:
        raise InputError(f"RLE counts add up to {total}, but shape {shape} has {size}")
    return shape, vals, cnts


def rle_decode(
    shape: Sequence[int],
    values: Sequence[int],
    counts: Sequence[int],
    dtype: Any = np.uint8,
) -> np.ndarray:
    """Inverse of :func:`rle_encode`; raises ``InputError`` for inconsistent runs."""
    shape, vals, cnts = check_rle(shape, values, counts)
    info = np.iinfo(dtype)
    if vals.size and (vals.min() < info.min or vals.max() > info.max):
        raise InputError(f"RLE values must lie in {info.min}..{info.max}")
    return np.repeat(vals.astype(dtype), cnts).reshape(shape)


def png_bytes(array: np.ndarray) -> bytes:
    """PNG file bytes of a 2D bool/uint8/uint16 array or an ``(H, W, 3)`` uint8 array."""
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def png_encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """A 2D mask, or a ``(n, H, W)`` block stacked to ``n * H`` rows, as a 1-bit PNG."""
    m = np.asarray(mask, dtype=bool)
    flat2d = m.reshape(-1, m.shape[-1]) if m.ndim == 3 else m
    data = base64.b64encode(png_bytes(flat2d)).decode("ascii")
    return {"encoding": "png", "shape": [int(s) for s in m.shape], "png": data}


def png_decode_mask(shape: Sequence[int], data: str) -> np.ndarray:
    """Inverse of :func:`png_encode_mask`."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(io.BytesIO(base64.b64decode(data, validate=True))) as im:
            if im.width * im.height > MAX_RLE_SIZE:
                raise InputError(f"PNG mask of {im.width} x {im.height} pixels is too large")
            arr = np.asarray(im.convert("L")) > 0
        return arr.reshape(tuple(int(s) for s in shape))
    except InputError:
        raise
    except (PILImage.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot decode the PNG mask ({exc})") from exc


def encode_mask(mask: np.ndarray, encoding: str) -> dict[str, Any]:
    """``mask`` as ``"rle"`` or ``"png"``."""
    if encoding == "png":
        return png_encode_mask(mask)
    if encoding == "rle":
        return rle_encode(np.asarray(mask, dtype=bool))
    raise InputError(f"unknown mask encoding {encoding!r}; use 'rle' or 'png'")
