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
]


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


def rle_decode(
    shape: Sequence[int],
    values: Sequence[int],
    counts: Sequence[int],
    dtype: Any = np.uint8,
) -> np.ndarray:
    """Inverse of :func:`rle_encode`; raises ``InputError`` for inconsistent runs."""
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise InputError(f"RLE shape must be non-negative, got {shape}")
    vals = np.asarray(values, dtype=np.int64)
    cnts = np.asarray(counts, dtype=np.int64)
    if vals.ndim != 1 or vals.shape != cnts.shape:
        raise InputError(f"RLE has {vals.size} values but {cnts.size} counts")
    if cnts.size and cnts.min() < 0:
        raise InputError("RLE counts must be non-negative")
    size = int(np.prod(shape, dtype=np.int64))
    if int(cnts.sum()) != size:
        raise InputError(f"RLE counts add up to {int(cnts.sum())}, but shape {shape} has {size}")
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

    with PILImage.open(io.BytesIO(base64.b64decode(data))) as im:
        arr = np.asarray(im.convert("L")) > 0
    return arr.reshape(tuple(int(s) for s in shape))


def encode_mask(mask: np.ndarray, encoding: str) -> dict[str, Any]:
    """``mask`` as ``"rle"`` or ``"png"``."""
    if encoding == "png":
        return png_encode_mask(mask)
    if encoding == "rle":
        return rle_encode(np.asarray(mask, dtype=bool))
    raise InputError(f"unknown mask encoding {encoding!r}; use 'rle' or 'png'")
