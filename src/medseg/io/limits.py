"""Image size read from file headers only, checked against a limit before any decode.

A 74-byte PNG can claim 60000 x 60000 pixels and a 500 KB ``.nii.gz`` a gigavoxel volume;
decoding them would take gigabytes. ``check_size`` reads only the header (Pillow's lazy
``open``, tifffile's page and series headers, nibabel's header, SimpleITK's
``ReadImageInformation`` for NRRD/MetaImage, pydicom with ``stop_before_pixels``, NumPy's
``.npy`` header) and raises ``InputError`` when the image is larger than ``SizeLimits``:

- 2D images (``(H, W[, C])``): at most ``max_pixels`` pixels (default 100 M);
- 3D volumes (``(Z, Y, X[, C])``) and stacks: at most ``max_voxels`` voxels (default 400 M,
  so a 512 x 512 x 600 CT of 157 M voxels passes).

Channels are not counted (an RGB pixel is one pixel). Every reader of ``medseg.io.load``
calls the check; ``medseg serve --max-pixels/--max-voxels`` change the process default
(``set_default_limits``).

NRRD/MetaImage headers are first checked by ``medseg.io.detached.check_data_files``: a
detached data file outside the header's folder is refused before ITK opens it. Pillow's
``DecompressionBombWarning`` (above 89 M pixels) is silenced here; these limits apply
instead.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import tokenize
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.errors import InputError

__all__ = [
    "SizeLimits",
    "DEFAULT_LIMITS",
    "default_limits",
    "set_default_limits",
    "header_shape",
    "check_shape",
    "check_size",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SizeLimits:
    """Largest image sizes medseg decodes.

    Attributes:
        max_pixels: pixels of a 2D image (``H * W``, channels not counted).
        max_voxels: voxels of a 3D volume or stack (``Z * Y * X``, channels not counted).
    """

    max_pixels: int = 100_000_000
    max_voxels: int = 400_000_000

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_voxels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")


#: The limits used when a reader is given none (see ``set_default_limits``).
DEFAULT_LIMITS = SizeLimits()
_current: list[SizeLimits] = [DEFAULT_LIMITS]


def default_limits() -> SizeLimits:
    """The process-wide limits used when ``load`` is given none."""
    return _current[0]


def set_default_limits(limits: SizeLimits) -> None:
    """Change the process-wide default (``medseg serve --max-pixels/--max-voxels``)."""
    if not isinstance(limits, SizeLimits):
        raise InputError(f"limits must be a SizeLimits, got {type(limits).__name__}")
    _current[0] = limits


def check_shape(shape: tuple[int, ...], path: Path | str, limits: SizeLimits | None = None) -> None:
    """Raise ``InputError`` naming ``path`` when a spatial ``shape`` exceeds ``limits``.

    ``shape`` is the spatial shape in array order, channels excluded: ``(H, W)`` is checked
    against ``max_pixels``, anything with more axes (``(Z, Y, X)``, stacks) against
    ``max_voxels``. Negative sizes are refused as corrupt headers.
    """
    limits = limits or default_limits()
    dims = [int(s) for s in shape]
    if any(s < 0 for s in dims):
        raise InputError(f"{path}: header gives a negative size {tuple(dims)}; file is corrupt")
    n = math.prod(dims)
    two_d = len(dims) <= 2
    limit = limits.max_pixels if two_d else limits.max_voxels
    if n > limit:
        what, unit, option = (
            ("2D image", "pixels", "max_pixels") if two_d else ("volume", "voxels", "max_voxels")
        )
        raise InputError(
            f"{path}: {what} of size {' x '.join(map(str, dims))} ({n:,} {unit}) is larger "
            f"than the limit of {limit:,} {unit} ({option}); refused before decoding"
        )


def check_size(
    path: str | os.PathLike[str], fmt: str, limits: SizeLimits | None = None
) -> tuple[int, ...] | None:
    """Check the header size of ``path`` (format ``fmt``) against ``limits``.

    Returns the spatial shape read from the header (array order, channels excluded), or
    None when the format keeps its size elsewhere (DICOM folders are checked per series by
    ``medseg.io.dicom``). Raises ``InputError`` for a too-large image or an unreadable
    header.
    """
    p = Path(path)
    if fmt == "dicom" and p.is_dir():
        return None
    shape = header_shape(p, fmt)
    if shape is not None:
        check_shape(shape, p, limits)
    if fmt == "metaimage":
        _check_metaimage_stream(p)
    return shape


def header_shape(path: Path, fmt: str) -> tuple[int, ...] | None:
    """Spatial shape ``(H, W)`` or ``(Z, Y, X)`` (stacks: all leading axes) from the header.

    Singleton leading axes are dropped; channel axes are not included. Unreadable headers
    raise ``InputError``.
    """
    readers = {
        "png": _pil_shape,
        "jpeg": _pil_shape,
        "bmp": _pil_shape,
        "tiff": _tiff_shape,
        "nifti": _nifti_shape,
        "nrrd": functools.partial(_sitk_shape, fmt="nrrd"),
        "metaimage": functools.partial(_sitk_shape, fmt="metaimage"),
        "dicom": _dicom_shape,
        "npy": _npy_shape,
        "npz": _npz_shape,
    }
    reader = readers.get(fmt)
    if reader is None:
        return None
    shape = tuple(int(s) for s in reader(path))
    while len(shape) > 2 and shape[0] == 1:
        shape = shape[1:]
    return shape


def _pil_shape(path: Path) -> tuple[int, ...]:
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow warns above 89 M pixels; medseg's own limit (check_shape) applies instead.
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with PILImage.open(path) as im:  # lazy: reads the header, not the pixels
                width, height = im.size
    except PILImage.DecompressionBombError as exc:
        raise InputError(f"{path}: image is too large to decode safely ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: cannot read image header ({exc})") from exc
    return (height, width)


def _tiff_shape(path: Path) -> tuple[int, ...]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, axes = tuple(series.shape), series.axes
    except Exception as exc:  # corrupt IFDs: TypeError, RuntimeError, struct.error, ...
        raise InputError(f"{path}: cannot read TIFF header ({exc!r})") from exc
    return tuple(s for s, a in zip(shape, axes, strict=False) if a != "S")


def _nifti_shape(path: Path) -> tuple[int, ...]:
    import nibabel as nib

    try:
        header = nib.load(str(path)).header  # lazy: the data stay on disk
        shape = tuple(int(s) for s in header.get_data_shape())
    except Exception as exc:  # nibabel raises ImageFileError, OSError, EOFError, zlib.error...
        raise InputError(f"{path}: cannot read NIfTI header ({exc})") from exc
    return shape[::-1]


_MHA_NDIMS = re.compile(rb"^[ \t]*NDims[ \t]*[=:][ \t]*([^\r\n]*)", re.MULTILINE)
_MHA_MATRIX = re.compile(
    rb"^[ \t]*(?:TransformMatrix|Rotation|Orientation)[ \t]*[=:][ \t]*([^\r\n]*)", re.MULTILINE
)
_MHA_DATA_VALUE = re.compile(rb"[ \t]*[=:][ \t]*([^\s][^\n]*)")
# A file pattern (``slice%03d.raw 1 10 1``): one integer conversion, nothing else after a %.
_MHA_PATTERN = re.compile(rb"%0?[0-9]{0,2}d")


def _check_metaimage_fields(path: Path) -> None:
    """Refuse an ``NDims`` outside 1..5, direction values that are not numbers of at most
    1e6 and an ``ElementDataFile`` without ``= value`` or with a ``%`` that is not one
    integer conversion (``%03d``): ITK's MetaIO segfaults or aborts on NDims -1 or 65535, on
    ``ElementDataFile`` followed by binary bytes, and corrupts the heap formatting a file
    pattern such as ``%&ab``; ITK hangs on a ``TransformMatrix`` value of 1e308 (all found
    by ``benchmarks/fuzz_readers.py``)."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    end = head.find(b"ElementDataFile")
    if end >= 0:
        value = _MHA_DATA_VALUE.match(head, end + len(b"ElementDataFile"))
        if value is None:
            raise InputError(f"{path}: MetaImage ElementDataFile has no '= value'; file is corrupt")
        name = value.group(1)  # MetaIO formats the whole value when it holds a %
        if name.count(b"%") > (1 if _MHA_PATTERN.search(name) else 0):
            shown = name[:60].decode("latin-1")
            raise InputError(
                f"{path}: MetaImage ElementDataFile pattern {shown!r} is not one %d "
                "conversion; file is corrupt"
            )
    head = head if end < 0 else head[:end]
    match = _MHA_NDIMS.search(head)
    value = match.group(1).strip() if match else b"3"  # ITK reports a missing NDims itself
    if not value.isdigit() or not 1 <= int(value) <= 5:
        shown = value[:20].decode("latin-1")
        raise InputError(f"{path}: MetaImage NDims {shown!r} is not 1..5; file is corrupt")
    for found in _MHA_MATRIX.finditer(head):
        try:
            ok = all(abs(float(v)) <= 1e6 for v in found.group(1).split())
        except ValueError:
            ok = False
        if not ok:
            shown = found.group(1)[:60].decode("latin-1")
            raise InputError(
                f"{path}: MetaImage direction {shown!r} is not usable; file is corrupt"
            )


_MET_BYTES = {"CHAR": 1, "UCHAR": 1, "SHORT": 2, "USHORT": 2, "INT": 4, "UINT": 4,
              "FLOAT": 4, "LONG": 8, "ULONG": 8, "LONG_LONG": 8, "ULONG_LONG": 8,
              "DOUBLE": 8}  # fmt: skip


def _mha_field(head: bytes, name: str) -> str | None:
    found = re.search(rb"^[ \t]*" + name.encode() + rb"[ \t]*[=:][ \t]*([^\r\n]*)", head, re.M)
    return None if found is None else found.group(1).decode("latin-1").strip()


def _check_metaimage_stream(path: Path) -> None:
    """Inflate a compressed ``ElementDataFile = LOCAL`` MetaImage's pixels in 1 MiB steps
    (nothing kept) and refuse a stream that is corrupt, short or longer than ``DimSize`` x
    channels x element size: MetaIO loops forever on some corrupt zlib streams (a 763-byte
    file, found by ``benchmarks/fuzz_readers.py``). Called after the size check."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
        key = head.find(b"ElementDataFile")
        line_end = head.find(b"\n", key)
        fields = head[: max(key, 0)]
        compressed = (_mha_field(fields, "CompressedData") or "").lower() == "true"
        if (
            key < 0
            or line_end < 0
            or not compressed
            or _mha_field(head, "ElementDataFile") != "LOCAL"
        ):
            return
        try:
            dims = [int(v) for v in (_mha_field(fields, "DimSize") or "").split()]
            kind = (_mha_field(fields, "ElementType") or "").removeprefix("MET_")
            channels = int(_mha_field(fields, "ElementNumberOfChannels") or 1)
            expected = math.prod(dims) * _MET_BYTES[kind] * channels
        except (ValueError, KeyError):
            return  # ITK refuses these fields itself
        fh.seek(line_end + 1)
        inflate, total = zlib.decompressobj(), 0
        try:
            while not inflate.eof and total <= expected:
                chunk = inflate.unconsumed_tail or fh.read(1 << 20)
                if not chunk:
                    break
                total += len(inflate.decompress(chunk, (1 << 20) + 1))
        except zlib.error as exc:
            raise InputError(f"{path}: MetaImage compressed pixels are corrupt ({exc})") from exc
    if not inflate.eof or total != expected:
        raise InputError(
            f"{path}: MetaImage compressed pixels give {total:,}{'' if inflate.eof else '+'} "
            f"bytes, the header {expected:,}; file is corrupt"
        )


def _sitk_shape(path: Path, fmt: str) -> tuple[int, ...]:
    import SimpleITK as sitk

    from medseg.io.detached import check_data_files

    check_data_files(path, fmt)  # before ITK opens a detached data file
    if fmt == "metaimage":
        _check_metaimage_fields(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise InputError(f"{path}: cannot read header ({lines[-1] if lines else exc})") from exc
    return tuple(int(s) for s in reader.GetSize())[::-1]


def _dicom_shape(path: Path) -> tuple[int, ...]:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        rows = int(ds.get("Rows", 0) or 0)
        cols = int(ds.get("Columns", 0) or 0)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except Exception as exc:  # pydicom raises InvalidDicomError, OSError, ValueError...
        raise InputError(f"{path}: cannot read DICOM header ({exc})") from exc
    return (frames, rows, cols) if frames > 1 else (rows, cols)


def _npy_dims(shape: tuple[int, ...], dtype: Any) -> tuple[int, ...]:
    """Spatial dims of a NumPy array: a trailing 3/4 axis of uint8 is colour channels."""
    rgb = len(shape) == 3 and shape[-1] in (3, 4) and str(dtype) == "uint8"
    return shape[:-1] if rgb else shape


def _check_npy_header_length(fh: Any, path: Path, version: tuple[int, int]) -> None:
    """Refuse a header length beyond the end of the file before NumPy reads (and allocates)
    it: a 657-byte file declaring a 4 GB header raised MemoryError (found by the fuzzer)."""
    width = 2 if version == (1, 0) else 4
    raw = fh.read(width)
    if len(raw) < width:
        raise InputError(f"{path}: NPY file ends inside its header; file is corrupt")
    length = int.from_bytes(raw, "little")
    room = os.fstat(fh.fileno()).st_size - fh.tell()
    if length > room:
        raise InputError(
            f"{path}: NPY header length of {length:,} bytes is more than the {room:,} bytes "
            "left in the file; file is corrupt"
        )
    fh.seek(-width, os.SEEK_CUR)


def _npy_shape(path: Path) -> tuple[int, ...]:
    import numpy as np

    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            _check_npy_header_length(fh, path, version)
            read = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read(fh)
    except InputError:
        raise
    except (OSError, ValueError, EOFError, SyntaxError, tokenize.TokenError) as exc:
        raise InputError(f"{path}: cannot read NPY header ({exc})") from exc
    return _npy_dims(tuple(shape), dtype)


def _npz_shape(path: Path) -> tuple[int, ...]:
    from medseg.io.arrays import npz_arrays

    try:
        arrays = npz_arrays(path)
    except zipfile.BadZipFile as exc:  # pragma: no cover - npz_arrays wraps it
        raise InputError(f"{path}: cannot read NPZ ({exc})") from exc
    if not arrays:
        return (0, 0)
    largest = max(arrays, key=lambda a: math.prod(a["shape"]))
    return _npy_dims(tuple(largest["shape"]), largest["dtype"])
