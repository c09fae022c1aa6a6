"""Checked uploads: allowed type, size limit, file signature and a full decode.

Accepted: one PNG, JPEG, BMP, TIFF, NIfTI (``.nii``/``.nii.gz``), NRRD (``.nrrd``),
MetaImage (``.mha``) or DICOM file, or several DICOM files of one series. Files are first
written to a hidden staging folder inside the datastore (``uploads/.incoming``, never
listed), checked, decoded with :func:`medseg.io.load`, and only then moved to
``uploads/<name>`` (DICOM: ``uploads/<name>/``). Names are reduced to their last component
and safe characters, so no upload can land outside ``uploads/``.

The image size is checked from the header before decoding (``medseg.io.limits``, bounded
also by ``max_voxels``); every file of a DICOM series must be a readable DICOM file of
that one series (a corrupt ``.dcm`` refuses the upload); a NRRD or MetaImage must hold
its own pixels (a header naming a data file, ``ElementDataFile = /etc/passwd`` or
``data file: ...``, is refused before decoding); error messages name the
client's file names, never server paths. Staging folders older than ``STALE_STAGING_S``
(left by a crash) are removed when the next upload starts.

A label save's JSON body (RLE) is bounded before it is read or parsed by
:func:`label_body_limit`: the smaller of ``max_label_body_bytes`` and what a label map of
the image can take (``LABEL_BODY_BYTES_PER_VOXEL`` per voxel plus ``LABEL_BODY_SLACK``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.errors import InputError
from medseg.io.image import Image
from medseg.server.datastore import Datastore, ImageEntry, inside

__all__ = [
    "UPLOAD_TYPES",
    "UnsupportedType",
    "UploadedFile",
    "upload_format",
    "safe_filename",
    "check_signature",
    "staging_dir",
    "store_upload",
    "discard",
    "STALE_STAGING_S",
    "label_body_limit",
    "LABEL_BODY_BYTES_PER_VOXEL",
    "LABEL_BODY_SLACK",
]

log = logging.getLogger(__name__)

#: Staging folders older than this (seconds) belong to no running upload.
STALE_STAGING_S = 3600.0

#: JSON bytes a label map may take per voxel of its image: at most one run per voxel, and
#: a run is a value (``65535,``) and a count (about 2 digits on average when every voxel
#: is a run) plus room for whitespace.
LABEL_BODY_BYTES_PER_VOXEL = 16
#: Bytes for the rest of a label save: up to 1024 label names and colours, the note.
LABEL_BODY_SLACK = 256 * 1024

#: Extension -> format of accepted uploads (longest suffixes are matched first).
UPLOAD_TYPES: dict[str, str] = {
    ".nii.gz": "nifti",
    ".nii": "nifti",
    ".nrrd": "nrrd",
    ".mha": "metaimage",
    ".dcm": "dicom",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".bmp": "bmp",
    ".tif": "tiff",
    ".tiff": "tiff",
}
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class UnsupportedType(InputError):
    """An upload whose extension or content is not an accepted image type (HTTP 415)."""


@dataclass(frozen=True)
class UploadedFile:
    """A received file: the client's name and where its bytes were staged."""

    filename: str
    path: Path


def upload_format(filename: str) -> str:
    """The format of an upload by its extension; raises ``InputError`` (HTTP 415)."""
    lower = filename.lower()
    for ext in sorted(UPLOAD_TYPES, key=len, reverse=True):
        if lower.endswith(ext):
            return UPLOAD_TYPES[ext]
    allowed = ", ".join(sorted(UPLOAD_TYPES))
    raise UnsupportedType(f"{filename!r}: unsupported file type; upload one of {allowed}")


def safe_filename(filename: str) -> str:
    """The last path component of ``filename`` with unsafe characters replaced by ``_``."""
    base = re.split(r"[\\/]", filename or "")[-1]
    base = _SAFE.sub("_", base).lstrip("._-")[-120:]
    if not base or base in (".", ".."):
        raise InputError(f"{filename!r} is not a usable file name")
    return base


def check_signature(path: Path, fmt: str) -> bool:
    """True when the file starts like a file of ``fmt`` (magic bytes)."""
    with open(path, "rb") as fh:
        head = fh.read(352)
    signatures = {
        "png": head.startswith(b"\x89PNG\r\n\x1a\n"),
        "jpeg": head.startswith(b"\xff\xd8\xff"),
        "bmp": head.startswith(b"BM"),
        "tiff": head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
        "nrrd": head.startswith(b"NRRD"),
        "metaimage": b"ObjectType" in head or b"NDims" in head,
        "dicom": len(head) >= 132 and head[128:132] == b"DICM",
    }
    if fmt == "nifti":
        if head.startswith(b"\x1f\x8b"):
            return True  # gzip; the decode step checks the NIfTI header inside
        return len(head) >= 348 and int.from_bytes(head[:4], "little") in (348, 540)
    return signatures.get(fmt, False)


def _unique(target: Path) -> Path:
    if not target.exists():
        return target
    name = target.name
    stem, ext = (name[: -len(".nii.gz")], ".nii.gz") if name.endswith(".nii.gz") else (
        target.stem, target.suffix)  # fmt: skip
    for i in range(1, 10_000):
        candidate = target.with_name(f"{stem}-{i}{ext}")
        if not candidate.exists():
            return candidate
    raise InputError(f"too many uploads named {name!r}")


def staging_dir(datastore: Datastore) -> Path:
    """A fresh hidden folder inside ``uploads/`` for one upload's files (stale folders of
    crashed uploads are removed first)."""
    incoming = datastore.uploads_dir / ".incoming"
    sweep_staging(incoming)
    folder = incoming / secrets.token_hex(8)
    folder.mkdir(parents=True)
    return folder


def sweep_staging(incoming: Path, min_age_s: float = STALE_STAGING_S) -> int:
    """Remove staging folders under ``incoming`` older than ``min_age_s``; returns how many."""
    if not incoming.is_dir():
        return 0
    now, removed = time.time(), 0
    for folder in incoming.iterdir():
        try:
            old = now - folder.lstat().st_mtime >= min_age_s
        except OSError:
            continue
        if old and folder.is_dir() and not folder.is_symlink():
            discard(folder)
            removed += 1
    if removed:
        log.warning("removed %d staging folders of interrupted uploads", removed)
    return removed


def _public(message: str, files: list[UploadedFile]) -> str:
    """``message`` with the staging paths replaced by the client's file names."""
    folder = str(files[0].path.parent)
    for f in files:
        message = message.replace(str(f.path), repr(f.filename))
    return message.replace(folder + "/", "").replace(folder, "the upload")


def _short_pixel_data(ds: Any) -> tuple[int, int] | None:
    """(bytes present, bytes needed) when uncompressed pixel data are cut short, else None."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if "PixelData" not in ds or syntax is None or syntax.is_compressed:
        return None  # compressed frames are checked by the decoder
    bits = int(ds.get("BitsAllocated", 8) or 8)
    count = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1)
    count *= int(ds.get("NumberOfFrames", 1) or 1)
    needed = (count * bits + 7) // 8
    present = len(ds.PixelData)
    return (present, needed) if present < needed else None


def _check_dicom_files(files: list[UploadedFile]) -> None:
    """Every uploaded ``.dcm`` must parse as DICOM with complete image pixels of one series."""
    import pydicom

    series = set()
    for f in files:
        try:
            ds = pydicom.dcmread(f.path)  # one file at a time, bounded by the upload limit
            uid = ds.get("SeriesInstanceUID")
            if not uid or "Rows" not in ds or "Columns" not in ds:
                raise InputError(f"{f.filename!r} is not a DICOM image (no series UID or size)")
            short = _short_pixel_data(ds)
        except InputError:
            raise
        except Exception as exc:  # pydicom raises InvalidDicomError, OSError, ValueError...
            raise InputError(f"{f.filename!r} is not a readable DICOM file ({exc})") from exc
        if short is not None:
            raise InputError(
                f"{f.filename!r} is cut short: {short[0]} of its {short[1]} pixel data bytes"
            )
        series.add(str(uid))
    if len(series) > 1:
        raise InputError("the uploaded DICOM files belong to more than one series")


def _check_self_contained(upload: UploadedFile, fmt: str) -> None:
    """An uploaded NRRD/MetaImage must hold its own pixels: a single file cannot bring the
    data file a detached header names, so any such reference is refused before decoding
    (``ElementDataFile = /etc/passwd`` would read a server file as pixels)."""
    from medseg.io.detached import detached_refs

    if fmt not in ("nrrd", "metaimage"):
        return
    try:
        refs = detached_refs(upload.path, fmt)
    except InputError as exc:
        raise InputError(f"{upload.filename!r}: {_public(str(exc), [upload])}") from exc
    if fmt == "metaimage" and not refs:
        with open(upload.path, "rb") as fh:
            if b"ElementDataFile" not in fh.read(1 << 20):
                raise InputError(
                    f"{upload.filename!r}: MetaImage header has no ElementDataFile field; an "
                    "uploaded .mha must say ElementDataFile = LOCAL"
                )
    if refs:
        value = refs[0].value if len(refs[0].value) <= 80 else refs[0].value[:77] + "..."
        need = "ElementDataFile = LOCAL" if fmt == "metaimage" else "no data file field"
        raise InputError(
            f"{upload.filename!r}: header field {refs[0].field} names another file "
            f"({value!r}); an uploaded {fmt} file must hold its own pixels ({need})"
        )


def _decode(source: Path, fmt: str, files: list[UploadedFile], max_voxels: int) -> Image:
    """Header size check, then the full decode; errors name the client's file names."""
    from medseg.io.limits import SizeLimits, check_size, default_limits
    from medseg.io.readers import load

    _check_self_contained(files[0], fmt)
    base = default_limits()
    limits = SizeLimits(min(base.max_pixels, max_voxels), min(base.max_voxels, max_voxels))
    try:
        if fmt == "dicom":
            _check_dicom_files(files)
        check_size(source, fmt, limits)
        return load(source, limits=limits)
    except InputError as exc:
        raise InputError(
            f"{files[0].filename!r} cannot be decoded: {_public(str(exc), files)}"
        ) from exc


def store_upload(datastore: Datastore, files: list[UploadedFile], max_voxels: int) -> ImageEntry:
    """Check, decode and move staged ``files`` into ``uploads/``; returns the new image."""
    if not files:
        raise InputError("no file uploaded")
    formats = {upload_format(f.filename) for f in files}
    if len(files) > 1 and formats != {"dicom"}:
        raise UnsupportedType("several files can be uploaded only as the .dcm files of one series")
    fmt = formats.pop()
    for f in files:
        if not check_signature(f.path, fmt):
            raise UnsupportedType(f"{f.filename!r} is not a {fmt} file (wrong signature)")
    staged = files[0].path.parent
    source = staged if fmt == "dicom" else files[0].path
    image = _decode(source, fmt, files, max_voxels)
    if fmt == "dicom" and int(image.meta.get("series_count", 1)) > 1:
        raise InputError("the uploaded DICOM files belong to more than one series")
    used = len(image.meta.get("files", [source]))
    if fmt == "dicom" and used != len(files):
        raise InputError(f"only {used} of the {len(files)} uploaded DICOM files form the series")
    voxels = int(image.array.size)
    if voxels > max_voxels:
        raise InputError(f"image has {voxels} values, more than the limit {max_voxels}")
    name = safe_filename(files[0].filename)
    if fmt == "dicom":
        target = _unique(datastore.uploads_dir / Path(name).stem)
        moved = staged.rename(target)
    else:
        target = _unique(datastore.uploads_dir / name)
        moved = files[0].path.rename(target)
    if not inside(datastore.uploads_dir, moved):  # pragma: no cover - safe_filename prevents it
        raise InputError("upload target escapes the datastore")
    rel = moved.relative_to(datastore.root).as_posix()
    for entry in datastore.scan():
        if entry.rel == rel:
            return entry
    raise InputError(f"{files[0].filename!r} was stored but is not listed as an image")


def label_body_limit(shape: tuple[int, ...], cap: int) -> tuple[int, str]:
    """``(largest body in bytes, what it is)`` of a label save on an image of spatial
    ``shape`` (``(H, W)`` or ``(Z, Y, X)``): the smaller of ``cap``
    (``max_label_body_bytes``) and ``LABEL_BODY_BYTES_PER_VOXEL`` bytes per voxel plus
    ``LABEL_BODY_SLACK``. The text names the rule for the 413 message."""
    voxels = math.prod(int(s) for s in shape)
    own = LABEL_BODY_BYTES_PER_VOXEL * voxels + LABEL_BODY_SLACK
    if own >= cap:
        return int(cap), f"the limit of {cap:,} bytes (max_label_body_bytes)"
    dims = " x ".join(str(int(s)) for s in shape)
    return own, (
        f"the {own:,} bytes a label map of this {dims} image can take "
        f"({LABEL_BODY_BYTES_PER_VOXEL} per voxel + {LABEL_BODY_SLACK:,})"
    )


def discard(folder: Path) -> None:
    """Remove a staging folder (after a failed or finished upload)."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(folder)
