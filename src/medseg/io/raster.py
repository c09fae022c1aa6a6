"""Raster images (PNG, JPEG, BMP, TIFF) through Pillow and tifffile.

Reading:

- grayscale (8/16/32-bit, float) gives a 2D ``(H, W)`` image, ``modality="unknown"``;
- RGB gives ``(H, W, 3)`` with ``channels=True`` and ``modality="RGB"``; RGBA drops the
  alpha channel, gray+alpha drops alpha; palette images become RGB (for ``load``) or keep
  their palette indices (for ``load_label``, where the indices are the labels);
- multi-page TIFF gives a 3D ``(Z, Y, X[, C])`` stack (axes from tifffile's series axes).

Rasters carry no geometry: spacing 1, origin 0, identity direction.

Writing keeps values exactly or refuses: PNG/BMP/JPEG hold uint8 (PNG also uint16) and one
2D image; integer arrays whose values fit are cast losslessly, anything else raises
``InputError`` (use TIFF, NIfTI or NPY, or ``medseg convert --display`` for an 8-bit view).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.io.image import Image

__all__ = ["read_raster", "write_raster"]

log = logging.getLogger(__name__)

_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "bmp": "BMP"}


def read_raster(path: Path, fmt: str, *, label: bool = False, modality: str | None = None) -> Image:
    """Read a PNG/JPEG/BMP (Pillow) or TIFF (tifffile) file as an ``Image``."""
    if fmt == "tiff":
        arr, channels = _read_tiff(path)
    else:
        arr, channels = _read_pil(path, label=label)
    default = "RGB" if channels else "unknown"
    return Image(
        array=arr,
        channels=channels,
        modality=modality or default,
        meta={"path": str(path), "format": fmt},
    )


def _read_pil(path: Path, *, label: bool) -> tuple[np.ndarray, bool]:
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # DecompressionBombWarning: medseg.io.limits applies
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            im = PILImage.open(path)
        with im:
            im.load()
            mode = im.mode
            if mode == "P" and not label:
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif mode in ("1", "LA", "PA"):
                im = im.convert("L") if mode != "PA" or not label else im.getchannel(0)
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGB")
            arr = np.array(im)
    except PILImage.DecompressionBombError as exc:
        raise InputError(f"{path}: image is too large to decode safely ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: cannot read image ({exc})") from exc
    if arr.ndim == 3:
        if arr.shape[-1] == 4:
            arr = np.ascontiguousarray(arr[..., :3])  # RGBA -> RGB: drop alpha
        return arr, True
    if arr.dtype == np.int32 and arr.size and arr.min() >= 0 and arr.max() <= 65535:
        arr = arr.astype(np.uint16)  # Pillow mode "I" for 16-bit data
    return arr, False


def _read_tiff(path: Path) -> tuple[np.ndarray, bool]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes = series.axes
            arr = series.asarray()
    except (tifffile.TiffFileError, OSError, ValueError, IndexError) as exc:
        raise InputError(f"{path}: cannot read TIFF ({exc})") from exc
    channels = axes.endswith("S") and arr.shape[-1] > 1
    if axes.endswith("S") and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if channels and arr.shape[-1] == 4:
        arr = np.ascontiguousarray(arr[..., :3])
    # Drop leading singleton axes (e.g. a one-page stack written as (1, H, W)).
    while arr.ndim - (1 if channels else 0) > 2 and arr.shape[0] == 1:
        arr = arr[0]
    spatial = arr.ndim - (1 if channels else 0)
    if spatial not in (2, 3):
        raise InputError(
            f"{path}: TIFF with axes {axes!r} and shape {arr.shape} is not a 2D image or 3D stack"
        )
    return arr, channels


def write_raster(image: Image, target: Path, fmt: str, name: str = "") -> None:
    """Write ``image`` to ``target`` (a path from ``atomic_path``) as PNG/JPEG/BMP/TIFF.

    ``name`` is the final file name, used in error messages (``target`` is a temporary).
    """
    name = name or target.name
    if fmt == "tiff":
        _write_tiff(image, target, name)
        return
    arr = _pil_array(image, fmt, name)
    from PIL import Image as PILImage

    pil = PILImage.fromarray(arr)
    options: dict[str, Any] = {"quality": 95} if fmt == "jpeg" else {}
    try:
        pil.save(target, format=_PIL_FORMATS[fmt], **options)
    except (OSError, ValueError) as exc:
        raise InputError(f"{name}: cannot write {fmt.upper()} ({exc})") from exc


def _pil_array(image: Image, fmt: str, name: str) -> np.ndarray:
    if image.ndim != 2:
        raise InputError(
            f"{name}: {fmt.upper()} holds one 2D image but got a 3D volume of shape "
            f"{image.shape}; write NIfTI/NRRD/MHA/TIFF/NPY instead, or pick a slice"
        )
    arr = image.array
    if image.channels and arr.shape[-1] not in (3, 4):
        raise InputError(
            f"{name}: {fmt.upper()} holds gray, RGB or RGBA, got {arr.shape[-1]} channels"
        )
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    allowed = [np.uint8] if (fmt != "png" or image.channels) else [np.uint8, np.uint16]
    if arr.dtype.type in allowed:
        return arr
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    integral = np.issubdtype(arr.dtype, np.integer) or bool(np.all(np.mod(arr, 1) == 0))
    for dtype in allowed:
        info = np.iinfo(dtype)
        if integral and lo >= info.min and hi <= info.max:
            return arr.astype(dtype)
    raise InputError(
        f"{name}: {fmt.upper()} stores {'/'.join(np.dtype(d).name for d in allowed)} but the "
        f"image is {arr.dtype} with values {lo:g}..{hi:g}; write TIFF/NIfTI/NPY to keep the "
        "values, or convert with --display for an 8-bit view"
    )


def _write_tiff(image: Image, target: Path, name: str) -> None:
    import tifffile

    arr = image.array.astype(np.uint8) if image.array.dtype == bool else image.array
    photometric = "rgb" if image.channels and arr.shape[-1] in (3, 4) else "minisblack"
    try:
        tifffile.imwrite(target, arr, photometric=photometric, compression="zlib")
    except (ValueError, TypeError, OSError) as exc:
        raise InputError(f"{name}: cannot write TIFF ({exc})") from exc
