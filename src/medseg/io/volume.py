"""NIfTI (read with nibabel), NRRD and MetaImage (SimpleITK), and ``Image`` <-> SimpleITK.

SimpleITK's ``GetArrayFromImage`` returns ``(Z, Y, X)`` / ``(H, W)`` arrays and ITK (LPS)
geometry, which is exactly medseg's convention; only ``spacing`` is reversed into array
order.

2D or 3D: a file is 2D when its header says 2 dimensions. A NIfTI/NRRD whose header says 3
dimensions with a single slice stays 3D with shape ``(1, Y, X)``: its slice spacing,
origin and 3x3 direction are kept, so saving it again gives the same file geometry. A 4th
axis of length 1 (``(X, Y, Z, 1)`` NIfTI) is dropped; any longer 4th axis (time series,
stacked channels) raises ``InputError`` because medseg expects one file per channel
(nnU-Net style ``_0000``, ``_0001``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.io.detached import check_data_files
from medseg.io.image import Image

__all__ = [
    "image_to_sitk",
    "sitk_to_parts",
    "read_nifti",
    "read_volume",
    "write_volume",
    "write_detached",
]

log = logging.getLogger(__name__)

# Pixel types SimpleITK can write in every one of these formats.
_WRITABLE = (
    np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.float32, np.float64,
)  # fmt: skip


def image_to_sitk(image: Image, name: str = "") -> Any:
    """A ``SimpleITK.Image`` with the array and geometry of ``image``.

    Channel images become vector-pixel images. Boolean arrays are written as uint8, int64 as
    int32 and uint64 as uint32 when the values fit (NIfTI/NRRD readers handle them poorly).
    """
    import SimpleITK as sitk

    arr = _writable_array(image.array, name or image.meta.get("path"))
    img = sitk.GetImageFromArray(arr, isVector=image.channels)
    img.SetSpacing([float(s) for s in image.spacing[::-1]])
    img.SetOrigin([float(o) for o in image.origin])
    img.SetDirection([float(d) for d in np.asarray(image.direction).ravel()])
    if image.modality != "unknown":
        img.SetMetaData("modality", image.modality)  # kept by NRRD/MHA headers, not NIfTI
    return img


def _writable_array(arr: np.ndarray, name: object) -> np.ndarray:
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if arr.dtype.type in _WRITABLE:
        return arr
    if arr.dtype == np.float16:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer):
        for candidate in (np.int32, np.uint32):
            info = np.iinfo(candidate)
            if arr.size == 0 or (arr.min() >= info.min and arr.max() <= info.max):
                return arr.astype(candidate)
    raise InputError(f"{name or 'array'}: cannot store dtype {arr.dtype} in this format")


def sitk_to_parts(img: Any, path: Path | str) -> dict[str, Any]:
    """Array and geometry of a ``SimpleITK.Image`` as ``Image`` keyword arguments.

    Drops trailing length-1 axes beyond the third; raises ``InputError`` naming ``path``
    for more than 3 spatial dimensions.
    """
    import SimpleITK as sitk

    dim = img.GetDimension()
    if dim > 3:
        size = list(img.GetSize())
        if any(s != 1 for s in size[3:]):
            raise InputError(
                f"{path}: {dim}D image of size {tuple(size)} (x, y, z, t...); medseg expects "
                "a 2D or 3D image (one file per channel, nnU-Net style)"
            )
        img = sitk.Extract(img, [*size[:3], *([0] * (dim - 3))], [0] * dim)
        dim = 3
    arr = sitk.GetArrayFromImage(img)
    channels = img.GetNumberOfComponentsPerPixel() > 1
    return {
        "array": arr,
        "spacing": tuple(img.GetSpacing())[::-1],
        "origin": tuple(img.GetOrigin()),
        "direction": np.asarray(img.GetDirection(), dtype=float).reshape(dim, dim),
        "channels": channels,
    }


def read_nifti(path: Path, modality: str | None = None) -> Image:
    """Read a NIfTI file with nibabel.

    Not SimpleITK: ITK's NIfTI reader silently replaces NaN and inf by 0, which would hide
    exactly the bad values ``load_label`` must reject. nibabel's affine (sform when set,
    else qform) is RAS; it is flipped to LPS and split into spacing, origin and direction.
    """
    import nibabel as nib

    try:
        nii = nib.load(str(path))
        _check_nifti_dims(tuple(nii.shape), path)  # before the data are decoded
        data = np.asanyarray(nii.dataobj)
    except InputError:
        raise
    except Exception as exc:  # nibabel raises ImageFileError, OSError, EOFError, zlib.error...
        raise InputError(f"{path}: cannot read as NIfTI ({exc})") from exc
    if data.dtype.names:  # RGB24/RGBA32 NIfTI: structured dtype -> channel axis
        data = np.stack([data[name] for name in data.dtype.names[:3]], axis=-1)
        spatial = data.ndim - 1
    else:
        spatial = data.ndim
    while spatial > 3 and data.shape[spatial - 1] == 1:
        data = data.reshape(data.shape[: spatial - 1] + data.shape[spatial:])
        spatial -= 1
    if spatial > 3:
        raise InputError(
            f"{path}: {spatial}D image of shape {data.shape} (x, y, z, t...); medseg expects "
            "a 2D or 3D image (one file per channel, nnU-Net style)"
        )
    axes = (*range(spatial)[::-1], *range(spatial, data.ndim))
    arr = np.ascontiguousarray(data.transpose(axes))
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(nii.affine, dtype=float)
    cols = lps[:spatial, :spatial]
    spacing_xyz = np.linalg.norm(cols, axis=0)
    if np.any(spacing_xyz == 0):
        raise InputError(f"{path}: NIfTI affine has a zero-length axis: {nii.affine.tolist()}")
    meta: dict[str, Any] = {"path": str(path), "format": "nifti"}
    descrip = nii.header.get("descrip")
    text = descrip.item().decode("latin-1").strip("\0 ") if descrip is not None else ""
    if text:
        meta["descrip"] = text
    return Image(
        array=arr,
        spacing=tuple(spacing_xyz[::-1]),
        origin=tuple(lps[:spatial, 3]),
        direction=cols / spacing_xyz[None, :],
        channels=spatial != data.ndim,
        modality=modality or "unknown",
        meta=meta,
    )


def _check_nifti_dims(shape: tuple[int, ...], path: Path) -> None:
    """Refuse a NIfTI header with a 4th+ axis longer than 1 (``(X, Y, Z, T...)``)."""
    if len(shape) > 3 and any(s != 1 for s in shape[3:]):
        raise InputError(
            f"{path}: {len(shape)}D image of shape {shape} (x, y, z, t...); medseg expects "
            "a 2D or 3D image (one file per channel, nnU-Net style)"
        )


def read_volume(path: Path, fmt: str, modality: str | None = None) -> Image:
    """Read a NIfTI (nibabel), NRRD or MetaImage (SimpleITK) file.

    A NRRD/MetaImage header whose data file is not inside the header's folder raises
    ``InputError`` (``medseg.io.detached.check_data_files``).
    """
    import SimpleITK as sitk

    if fmt == "nifti":
        return read_nifti(path, modality)

    check_data_files(path, fmt)  # a .nhdr/.mhd may name any file as its pixels
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"{path}: cannot read as {fmt} ({_first_line(exc)})") from exc
    parts = sitk_to_parts(img, path)
    meta: dict[str, Any] = {"path": str(path), "format": fmt}
    for key in img.GetMetaDataKeys():
        if key in ("descrip", "modality"):
            meta[key] = img.GetMetaData(key).strip()
    stored = meta.pop("modality", "")
    return Image(**parts, modality=modality or stored or "unknown", meta=meta)


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    # ITK messages start with a file:line location; the last line says what went wrong.
    return lines[-1] if lines else type(exc).__name__


def write_volume(image: Image, target: Path, name: str = "") -> None:
    """Write ``image`` with SimpleITK to ``target`` (NIfTI, NRRD, MetaImage; compressed).

    ``target`` is a path handed out by ``atomic_path``; ``name`` (the final file name) is
    used in error messages. Detached headers go through ``write_detached``.
    """
    import SimpleITK as sitk

    name = name or target.name
    if image.channels and target.name.lower().endswith((".nii", ".nii.gz")):
        raise InputError(f"{name}: medseg writes NIfTI one channel per file; use NRRD/MHA/TIFF")
    img = image_to_sitk(image, name)
    try:
        sitk.WriteImage(img, str(target), useCompression=True)
    except RuntimeError as exc:
        raise InputError(f"{name}: cannot write ({_first_line(exc)})") from exc


def write_detached(image: Image, target: Path) -> Path:
    """Write a ``.nhdr``/``.mhd`` header plus its data file next to ``target``, atomically.

    Hand-written: ``atomic_path`` renames one file, but SimpleITK writes two and records the
    data file's name inside the header.
    """
    import SimpleITK as sitk

    target.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{target.stem}.", dir=target.parent))
    try:
        img = image_to_sitk(image, str(target))
        sitk.WriteImage(img, str(tmpdir / target.name), useCompression=True)
        written = sorted(tmpdir.iterdir(), key=lambda p: p.name == target.name)
        for item in written:  # data file(s) first, header last
            os.replace(item, target.parent / item.name)
    except RuntimeError as exc:
        raise InputError(f"{target}: cannot write ({_first_line(exc)})") from exc
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmpdir)
    return target
