"""The datastore: the images in one folder, addressed by opaque ids, never by request paths.

What is listed (recursively, hidden entries skipped, symbolic links followed only when they
stay inside the folder):

- 2D files: PNG, JPEG, BMP, TIFF; volumes: NIfTI (``.nii``, ``.nii.gz``), NRRD, MetaImage;
- DICOM: every image series found in a folder (``.dcm`` files or extension-less DICOM
  files); derived objects (SEG, RTSTRUCT, ...) are not listed.

Folders named ``labels`` are skipped: medseg writes label versions to ``<folder>/labels/``
(see :mod:`medseg.server.labelstore`) and datasets keep their ground truth there.

An image id is a 16-hex-digit hash of the image's relative path (and DICOM series UID), so
it is stable across restarts and reveals nothing about the file system.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.errors import InputError, MedsegError
from medseg.inference.cache import ByteLRU, MemoryBudget
from medseg.io.dicom import NON_IMAGE_MODALITIES
from medseg.io.formats import detect_format, is_dicom_file
from medseg.io.image import Image

__all__ = ["Datastore", "ImageEntry", "NotFound", "write_sample_store", "inside", "IMAGE_ID"]

log = logging.getLogger(__name__)

#: Regular expression of an image id (used to validate path parameters).
IMAGE_ID = r"^[0-9a-f]{16}$"
_LISTED = ("nifti", "nrrd", "metaimage", "png", "jpeg", "bmp", "tiff")
_SKIP_DIRS = ("labels", "__pycache__", "node_modules")


class NotFound(MedsegError, LookupError):
    """An image, session or label version that does not exist (HTTP 404)."""


def inside(root: Path, path: Path) -> bool:
    """True when ``path`` (after resolving links and ``..``) lies inside ``root``."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):
        return False


@dataclass(frozen=True)
class ImageEntry:
    """One listed image.

    Attributes:
        id: opaque id used by the API.
        name: display name: the relative path (plus the series description for DICOM).
        rel: relative POSIX path of the file or DICOM folder.
        path: absolute path of the file or DICOM folder.
        format: ``nifti``, ``png``, ..., ``dicom``.
        series_uid: DICOM series UID (DICOM only).
        size_bytes: size on disk.
        modality: DICOM modality, else None until loaded.
    """

    id: str
    name: str
    rel: str
    path: Path
    format: str
    series_uid: str | None = None
    size_bytes: int = 0
    modality: str | None = None

    @property
    def label_key(self) -> str:
        """Relative folder (under ``labels/``) holding this image's label versions."""
        if self.series_uid is None:
            return self.rel
        return self.series_uid if self.rel in ("", ".") else f"{self.rel}/{self.series_uid}"

    @property
    def is_dicom(self) -> bool:
        return self.format == "dicom"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "format": self.format,
            "modality": self.modality,
            "size_bytes": self.size_bytes,
            "dicom": self.is_dicom,
        }


def _image_id(rel: str, series_uid: str | None) -> str:
    key = f"{rel}\x00{series_uid or ''}".encode()
    return hashlib.blake2b(key, digest_size=8).hexdigest()


class Datastore:
    """Images under ``root`` with an LRU cache of decoded images (thread-safe), bounded to
    ``max_loaded`` images and by ``budget`` (bytes or a :class:`MemoryBudget` shared with
    the server's other caches; None: no byte bound)."""

    def __init__(
        self, root: Path, max_loaded: int = 4, budget: MemoryBudget | int | None = None
    ) -> None:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise InputError(f"{root}: the datastore folder does not exist")
        self.root = root.resolve()
        self.labels_dir = self.root / "labels"
        self.uploads_dir = self.root / "uploads"
        self._lock = threading.Lock()
        self._scan_lock = threading.Lock()
        self._entries: dict[str, ImageEntry] = {}
        self._dicom_cache: dict[Path, tuple[tuple[int, int], list[ImageEntry]]] = {}
        self._loaded = ByteLRU(max(1, int(max_loaded)), budget)
        self._load_locks: dict[str, threading.Lock] = {}
        self.remote: Any = None  # DICOMweb series (medseg.server.dicomweb_source), or None

    # ---- listing -------------------------------------------------------------------
    def scan(self) -> list[ImageEntry]:
        """Rescan the folder; returns the images sorted by name."""
        with self._scan_lock:
            found = self._walk()
        if self.remote is not None:
            found = self.remote.merge(found)
        with self._lock:
            self._entries = {e.id: e for e in found}
        return found

    def _walk(self) -> list[ImageEntry]:
        found: list[ImageEntry] = []
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            d = Path(dirpath)
            dirnames[:] = sorted(
                n for n in dirnames if not n.startswith(".") and n not in _SKIP_DIRS
            )
            dicom_files = False
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = d / name
                if not inside(self.root, path) or not path.is_file():
                    continue
                kind = self._classify(path)
                if kind == "dicom":
                    dicom_files = True
                elif kind is not None:
                    rel = path.relative_to(self.root).as_posix()
                    found.append(
                        ImageEntry(_image_id(rel, None), rel, rel, path, kind,
                                   size_bytes=path.stat().st_size)
                    )  # fmt: skip
            if dicom_files:
                found.extend(self._dicom_entries(d))
        found.sort(key=lambda e: e.name.lower())
        return found

    @staticmethod
    def _classify(path: Path) -> str | None:
        try:
            fmt = detect_format(path)
        except InputError:
            return None
        if fmt == "dicom":
            return (
                "dicom"
                if path.suffix.lower() in (".dcm", ".dicom") or is_dicom_file(path)
                else None
            )
        if fmt in _LISTED and not path.name.lower().endswith((".raw", ".zraw")):
            return fmt
        return None

    def _dicom_entries(self, folder: Path) -> list[ImageEntry]:
        from medseg.io.dicom import list_dicom_series

        stat = folder.stat()
        stamp = (stat.st_mtime_ns, len(os.listdir(folder)))
        cached = self._dicom_cache.get(folder)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            series = list_dicom_series(folder, recursive=False)
        except InputError:
            series = []
        rel = folder.relative_to(self.root).as_posix()
        named = []
        for s in series:
            if s.modality.upper() in NON_IMAGE_MODALITIES:
                continue
            label = s.files[0].name if s.num_files == 1 else (s.description or s.modality)
            shown = f"{rel}/{label}" if rel != "." else label
            named.append((s, shown + (f" ({s.num_slices} slices)" if s.num_files > 1 else "")))
        entries = []
        for s, shown in named:
            if sum(1 for _, other in named if other == shown) > 1:
                shown += f" [{s.series_uid[-8:]}]"
            entries.append(
                ImageEntry(_image_id(rel, s.series_uid), shown, rel, folder, "dicom",
                           s.series_uid, s.size_bytes, s.modality)
            )  # fmt: skip
        self._dicom_cache[folder] = (stamp, entries)
        return entries

    def get(self, image_id: str) -> ImageEntry:
        """The entry with ``image_id`` (rescanning once if unknown); raises ``NotFound``."""
        with self._lock:
            entry = self._entries.get(image_id)
        if entry is None:
            self.scan()
            with self._lock:
                entry = self._entries.get(image_id)
        if entry is None:
            raise NotFound(f"no image with id {image_id!r}")
        return entry

    # ---- loading -------------------------------------------------------------------
    def load(self, image_id: str) -> Image:
        """The decoded image (cached, least recently used dropped first)."""
        entry = self.get(image_id)
        if self.remote is not None:  # a DICOMweb series is fetched first (kept on disk)
            self.remote.prepare(entry)
        image = self._loaded.get(image_id)
        if image is not None:
            return image
        with self._lock:
            lock = self._load_locks.setdefault(image_id, threading.Lock())
        with lock:
            image = self._loaded.get(image_id)
            if image is None:
                image = self._read(entry)
                self._loaded.put(image_id, image)
        return image

    @staticmethod
    def _read(entry: ImageEntry) -> Image:
        from medseg.io.readers import load

        image = load(entry.path, series_uid=entry.series_uid)
        log.info("loaded %s: %s %s", entry.name, image.array.shape, image.modality)
        return image

    def forget(self, image_id: str) -> None:
        """Drop a decoded image from the cache."""
        self._loaded.pop(image_id)


def write_sample_store(folder: Path) -> Path:
    """Create ``folder`` holding the built-in sample CT (a one-file DICOM series); returns it.

    The sample is copied only when missing, so labels saved on it survive restarts.
    """
    from medseg.data.samples import sample_path

    folder = Path(folder).expanduser()
    target = folder / "sample_ct" / "CT_small.dcm"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(".CT_small.dcm.tmp")
        shutil.copyfile(sample_path(), tmp)
        os.replace(tmp, target)
        log.info("wrote the sample CT to %s", target)
    return folder
