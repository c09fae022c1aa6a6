"""``load`` and ``load_label``: read any supported file or DICOM folder into an ``Image``.

Every failure (missing file, unknown type, corrupt data, unsupported shape, bad labels)
raises ``InputError`` whose message starts with the path; library exceptions are wrapped.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.io.formats import detect_format
from medseg.io.image import Image, LabelMap
from medseg.io.limits import SizeLimits, check_size

__all__ = ["load", "load_label"]

log = logging.getLogger(__name__)

#: Exceptions decoders raise on corrupt files (pydicom's lazy value parsing, tifffile's
#: IFDs, Pillow's chunk reads): wrapped as ``InputError`` by ``_read``.
_LIBRARY_ERRORS = (
    ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError, EOFError,
    OSError, ArithmeticError, AssertionError, NotImplementedError, MemoryError,
    struct.error, zlib.error,
)  # fmt: skip


def _check_exists(path: str | os.PathLike[str]) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_file() and p.stat().st_size == 0:
        raise InputError(f"{p}: file is empty")
    return p


def load(
    path: str | os.PathLike[str],
    *,
    series_uid: str | None = None,
    modality: str | None = None,
    key: str | None = None,
    index: int | None = None,
    irregular: str = "error",
    limits: SizeLimits | None = None,
) -> Image:
    """Read an image file or DICOM folder.

    Args:
        path: NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``, ``.nhdr``), MetaImage (``.mha``,
            ``.mhd``), DICOM (``.dcm``, extension-less DICOM files, or a folder holding one or
            more series), PNG/JPEG/BMP/TIFF, or NumPy ``.npy``/``.npz``.
        series_uid: which series to read from a DICOM folder (default: the one with the
            most slices; the choice is logged).
        modality: overrides the modality (DICOM files carry their own; other formats are
            ``"unknown"``, colour rasters ``"RGB"``).
        key: the ``.npz`` array to read (needed when the file has several arrays and none
            is named ``image``/``array``/``label``, e.g. MedMNIST ``train_images``).
        index: for ``.npy``/``.npz``, one sample along the first axis of a stacked array:
            ``(N, H, W[, C])`` -> ``(H, W[, C])``, ``(N, Z, Y, X)`` -> ``(Z, Y, X)``.
        irregular: DICOM slices with irregular positions: ``"error"`` (default) raises
            ``InputError``; ``"mean"`` reads them on a regular grid with the mean gap (with a
            warning; ``meta["slice_positions"]`` keeps the real positions).
        limits: largest 2D/3D size to decode (default ``medseg.io.limits.default_limits()``:
            100 M pixels, 400 M voxels); the size is read from the header first and a larger
            image raises ``InputError`` before any pixel data is read.

    Returns:
        ``Image`` with a 2D ``(H, W[, C])`` or 3D ``(Z, Y, X[, C])`` array, spacing in array
        order and LPS origin/direction; ``meta`` has ``path`` and ``format`` (and DICOM UIDs).
    """
    p = _check_exists(path)
    fmt = detect_format(p)
    opts = _options(p, fmt, series_uid=series_uid, key=key, index=index, irregular=irregular)
    image = _read(p, fmt, modality=modality, label=False, limits=limits, **opts)
    log.debug("loaded %s: %s %s", p, image.array.shape, image.array.dtype)
    return image


def _options(
    p: Path, fmt: str, *, series_uid: str | None, key: str | None, index: int | None,
    irregular: str,
) -> dict[str, Any]:  # fmt: skip
    """Validate the format-specific options of ``load``/``load_label`` against ``fmt``."""
    from medseg.io.dicom_file import check_irregular_mode

    if series_uid is not None and fmt != "dicom":
        raise InputError(f"{p}: --series/series_uid only applies to DICOM, this is {fmt}")
    if key is not None and fmt != "npz":
        raise InputError(f"{p}: --key/key only applies to NPZ files, this is {fmt}")
    if index is not None and fmt not in ("npy", "npz"):
        raise InputError(f"{p}: --index/index only applies to NPY/NPZ files, this is {fmt}")
    check_irregular_mode(irregular)
    return {"series_uid": series_uid, "key": key, "index": index, "irregular": irregular}


def _read(
    p: Path, fmt: str, *, series_uid: str | None, modality: str | None, label: bool,
    key: str | None = None, index: int | None = None, irregular: str = "error",
    limits: SizeLimits | None = None,
) -> Image:  # fmt: skip
    check_size(p, fmt, limits)  # header only: refuse oversized images before decoding
    try:
        return _decode(
            p, fmt, series_uid=series_uid, modality=modality, label=label, key=key,
            index=index, irregular=irregular, limits=limits,
        )  # fmt: skip
    except InputError:
        raise
    except _LIBRARY_ERRORS as exc:  # corrupt data the decoder did not explain (fuzzing)
        raise InputError(f"{p}: cannot read {fmt} file ({type(exc).__name__}: {exc})") from exc


def _decode(
    p: Path, fmt: str, *, series_uid: str | None, modality: str | None, label: bool,
    key: str | None, index: int | None, irregular: str, limits: SizeLimits | None,
) -> Image:  # fmt: skip
    """Decode ``p`` with the reader of ``fmt`` (after the size check)."""
    if fmt in ("nifti", "nrrd", "metaimage"):
        from medseg.io.volume import read_volume

        return read_volume(p, fmt, modality)
    if fmt in ("png", "jpeg", "bmp", "tiff"):
        from medseg.io.raster import read_raster

        return read_raster(p, fmt, label=label, modality=modality)
    if fmt in ("npy", "npz"):
        from medseg.io.arrays import read_array_file

        return read_array_file(p, fmt, modality=modality, key=key, index=index)
    from medseg.io.dicom import read_dicom

    return read_dicom(
        p, series_uid=series_uid, modality=modality, irregular=irregular, limits=limits
    )


def load_label(
    path: str | os.PathLike[str],
    *,
    series_uid: str | None = None,
    reference: Image | str | os.PathLike[str] | None = None,
    key: str | None = None,
    index: int | None = None,
    irregular: str = "error",
    limits: SizeLimits | None = None,
) -> LabelMap:
    """Read a label map: any format ``load`` reads, or a DICOM-SEG object.

    Values must be finite non-negative integers; NaN/inf, fractions, negative values or a
    multi-channel image raise ``InputError`` naming the file. ``key``, ``index`` and
    ``irregular`` and ``limits`` are as for ``load`` (``irregular`` also applies to a
    reference series).

    A DICOM-SEG is rebuilt on its source grid: on ``reference`` (the source ``Image`` or its
    series folder) when given, else on the series found next to the SEG file, else on the
    grid its own frames describe. Label values are the segment numbers, or the original
    values recorded by ``save_dicom_seg``; ``label_names`` come from the segment labels.
    """
    p = _check_exists(path)
    fmt = detect_format(p)
    opts = _options(p, fmt, series_uid=series_uid, key=key, index=index, irregular=irregular)
    if fmt == "dicom":
        from medseg.io.dicomseg_read import find_seg, load_dicom_seg

        seg_file = find_seg(p, series_uid)
        if seg_file is not None:
            check_size(seg_file, "dicom", limits)
            return load_dicom_seg(seg_file, reference=reference, irregular=irregular)
    if reference is not None:
        raise InputError(f"{p}: reference= is only used for DICOM-SEG files")
    image = _read(p, fmt, modality=None, label=True, limits=limits, **opts)
    return to_label_map(image, p)


def to_label_map(image: Image, path: Path | str) -> LabelMap:
    """Validate ``image`` as integer labels and wrap it in a ``LabelMap`` (errors name path)."""
    arr = image.array
    if image.channels:
        first = arr[..., 0]
        if not all(np.array_equal(first, arr[..., c]) for c in range(1, arr.shape[-1])):
            raise InputError(
                f"{path}: label image has {arr.shape[-1]} different colour channels; "
                "labels must be one integer per pixel"
            )
        arr = np.ascontiguousarray(first)
    names: dict[int, str] = dict(image.meta.get("label_names", {}))
    meta: dict[str, Any] = {k: v for k, v in image.meta.items() if k != "label_names"}
    try:
        return LabelMap(
            array=arr,
            spacing=image.spacing,
            origin=image.origin,
            direction=image.direction,
            modality="SEG",
            meta=meta,
            label_names=names,
        )
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from exc
