"""Image references, uploads and label files of the MONAI Label API.

MONAI Label clients name images themselves (3D Slicer uses the volume node's name, OHIF
the DICOM ``SeriesInstanceUID``), while medseg addresses images by 16-hex-digit ids. A
reference is resolved, in this order, as

1. a medseg image id;
2. a DICOM ``SeriesInstanceUID`` of a listed series;
3. a name: the file name without its image extension (``uploads/MRHead.nii.gz`` is
   ``MRHead``), or a DICOM series' folder name, compared after the same character
   clean-up uploads get (``MR Head`` -> ``MR_Head``).

Several images with one name: the one in ``uploads/`` wins, otherwise the reference is
ambiguous (HTTP 409; use the medseg id). An upload under a name that is taken is accepted
only when it holds the same voxels on the same grid (3D Slicer uploads a volume again
before saving its label in session mode); different content answers 409 and stores nothing,
because medseg never overwrites an image.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from fastapi import HTTPException, UploadFile

from medseg.errors import InputError
from medseg.io.image import Image
from medseg.server.datastore import IMAGE_ID, Datastore, ImageEntry, NotFound
from medseg.server.uploads import (
    UploadedFile,
    discard,
    staging_dir,
    store_upload,
    upload_format,
)

__all__ = [
    "name_key",
    "entry_names",
    "resolve_image",
    "stage_file",
    "store_named",
    "read_label_file",
    "label_suffix",
    "image_suffix",
    "download_name",
    "staging",
    "scratch",
]

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CHUNK = 1 << 20
_IMAGE_EXTS = (".nii.gz", ".nii", ".nrrd", ".mha", ".dcm", ".png", ".jpg", ".jpeg", ".bmp",
               ".tif", ".tiff")  # fmt: skip
_LABEL_EXTS = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".mha", ".png", ".tif", ".tiff", ".bin")


def name_key(name: str) -> str:
    """A client's image name as uploads store it (unsafe characters -> ``_``)."""
    key = _SAFE.sub("_", name.strip()).lstrip("._-")[:100]
    if not key:
        raise InputError(f"{name!r} is not a usable image name")
    return key


def _strip_ext(filename: str) -> str:
    lower = filename.lower()
    for ext in _IMAGE_EXTS:
        if lower.endswith(ext):
            return filename[: -len(ext)]
    return filename


def entry_names(entry: ImageEntry) -> set[str]:
    """The names a MONAI Label client may use for ``entry`` (besides its id)."""
    base = Path(entry.rel).name
    if entry.is_dicom:
        names = {entry.series_uid or ""}
        if base and base != ".":
            names.add(base)
        return names - {""}
    return {_strip_ext(base)}


def resolve_image(datastore: Datastore, ref: str) -> ImageEntry:
    """The image a MONAI Label reference names (see the module docstring).

    Raises ``NotFound`` (HTTP 404) or ``HTTPException`` 409 for an ambiguous name.
    """
    ref = (ref or "").strip()
    if not ref:
        raise InputError("no image given: pass ?image=<image id or name> or a session_id")
    if re.fullmatch(IMAGE_ID, ref):
        try:
            return datastore.get(ref)
        except NotFound:
            pass
    entries = datastore.scan()
    by_uid = [e for e in entries if e.series_uid == ref]
    if len(by_uid) == 1:
        return by_uid[0]
    try:
        key = name_key(ref)
    except InputError:
        key = ref
    found = by_uid or [e for e in entries if ref in entry_names(e) or key in entry_names(e)]
    if len(found) > 1:
        uploads = [e for e in found if e.rel.startswith("uploads/")]
        found = uploads if len(uploads) == 1 else found
    if not found:
        raise NotFound(f"no image named {ref!r}: upload it (PUT /datastore/?image={ref}) or "
                       "use an id from GET /datastore/?output=all")  # fmt: skip
    if len(found) > 1:
        raise HTTPException(409, f"{len(found)} images are named {ref!r}: use the image id "
                                 f"({', '.join(e.id for e in found[:5])})")  # fmt: skip
    return found[0]


def label_suffix(filename: str | None, allowed: tuple[str, ...] = _LABEL_EXTS) -> str:
    """The extension of an uploaded label (or image) file; raises ``InputError``."""
    lower = (filename or "").lower()
    for ext in allowed:
        if lower.endswith(ext):
            return ext
    raise InputError(f"{filename!r}: unsupported file type; send one of {', '.join(allowed)}")


def stage_file(upload: UploadFile, folder: Path, name: str, limit: int) -> Path:
    """Write ``upload`` to ``folder/name`` (at most ``limit`` bytes); returns the path."""
    target = folder / name
    total = 0
    with open(target, "wb") as out:
        while chunk := upload.file.read(_CHUNK):
            total += len(chunk)
            if total > limit:
                raise HTTPException(413, f"upload larger than the limit of {limit} bytes")
            out.write(chunk)
    if total == 0:
        raise InputError(f"{upload.filename!r} is empty")
    return target


def _same_image(a: Image, b: Image) -> bool:
    same_grid = a.same_geometry(b) and a.array.shape == b.array.shape
    return same_grid and np.array_equal(a.array, b.array)


def store_named(datastore: Datastore, name: str, staged: Path, max_voxels: int) -> ImageEntry:
    """Store the staged file ``staged`` (its suffix gives the type) as the image ``name``.

    An existing image of that name with the same content is returned as it is; different
    content raises ``HTTPException`` 409. ``staged`` is consumed either way.
    """
    from medseg.io.readers import load

    ext = next(e for e in _IMAGE_EXTS if staged.name.lower().endswith(e))
    key = name_key(name)
    try:
        existing = resolve_image(datastore, key)
    except NotFound:
        existing = None
    if existing is not None:
        try:
            same = _same_image(datastore.load(existing.id), load(staged))
        except InputError as exc:
            raise InputError(f"{name!r} cannot be decoded: {exc}") from exc
        if not same:
            raise HTTPException(409, f"an image named {name!r} already exists with other "
                                     "content; medseg never overwrites images: upload it "
                                     "under another name")  # fmt: skip
        return existing
    return store_upload(datastore, [UploadedFile(key + ext, staged)], max_voxels)


@contextmanager
def staging(datastore: Datastore) -> Iterator[Path]:
    """A staging folder inside the datastore's ``uploads/`` (removed afterwards)."""
    folder = staging_dir(datastore)
    try:
        yield folder
    finally:
        discard(folder)


@contextmanager
def scratch() -> Iterator[Path]:
    """A temporary folder outside the datastore (label files, results)."""
    folder = Path(tempfile.mkdtemp(prefix="medseg-monailabel-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def download_name(entry: ImageEntry) -> str:
    """The file name ``GET /datastore/image`` sends for ``entry`` (viewers pick their reader
    by it): image files as they are, a DICOM series as ``<folder name>.nrrd`` (one file,
    grey or colour, with the series' geometry)."""
    if not entry.is_dicom:
        return entry.path.name
    return f"{name_key(_strip_ext(Path(entry.rel).name))[:60]}.nrrd"


def image_suffix(filename: str | None) -> str:
    """The extension of an uploaded image; raises ``UnsupportedType`` (HTTP 415)."""
    upload_format(filename or "")
    return label_suffix(filename, _IMAGE_EXTS)


def read_label_file(path: Path, image: Image) -> np.ndarray:
    """A label file on ``image``'s grid as an integer array of ``image.shape``.

    ``.bin`` (OHIF) is raw uint8 in C order of ``(Z, Y, X)`` (x fastest); the other types are
    read with :func:`medseg.io.load_label`. Raises ``InputError`` for a shape mismatch.
    """
    from medseg.io.readers import load_label

    if path.name.lower().endswith(".bin"):
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size != int(np.prod(image.shape)):
            raise InputError(f"label.bin has {raw.size} voxels, the image {image.shape} has "
                             f"{int(np.prod(image.shape))}")  # fmt: skip
        return raw.reshape(image.shape)
    labels = load_label(path).array
    if labels.shape != image.shape:
        raise InputError(f"label shape {labels.shape} does not match the image {image.shape} "
                         "(send the label map on the image's grid)")  # fmt: skip
    return labels
