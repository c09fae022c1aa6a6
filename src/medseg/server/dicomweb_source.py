"""DICOMweb image series beside the datastore's own images (``medseg serve --dicomweb URL``).

:class:`DicomwebSource` lists the server's image series with QIDO-RS (SEG, RTSTRUCT and
other non-image series are left out) as :class:`DicomwebEntry` items of the datastore, so
the browser app, the MONAI Label API (by id, and by ``SeriesInstanceUID`` as OHIF names
series) and the label store treat them like local DICOM series. A series is fetched with
WADO-RS the first time it is opened, into ``DATA_DIR/.dicomweb/<SeriesInstanceUID>/``:

- atomically: the files go to ``.dicomweb/.partial-*`` and the folder is renamed into place
  when the whole series is there, so a failed fetch leaves nothing (crash leftovers are
  removed at start-up);
- bounded: after a fetch, least recently used series are removed while the cache holds more
  than ``max_bytes``, but the ``keep`` most recently used ones always stay (they may be the
  decoded images in memory, whose folder a DICOM-SEG export reads).

A series that is also in the folder itself is listed once (the local copy). Listing is
cached for ``list_ttl_s`` seconds; when the server cannot be reached the last listing is
kept (logged) so the folder's own images stay usable, while ``series(strict=True)``,
opening a series that is not cached and pushing raise ``DicomwebUnavailable`` (HTTP 503).
Labels of a DICOMweb series are saved under ``labels/dicomweb/<SeriesInstanceUID>/``;
:meth:`DicomwebSource.push_labels` stores one as a DICOM-SEG referencing the series
(STOW-RS).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from medseg.errors import InputError
from medseg.io.dicom import NON_IMAGE_MODALITIES
from medseg.io.dicomweb import DicomwebRef, DicomwebSeries, parse_dicomweb_url
from medseg.io.image import Image, LabelMap
from medseg.server.datastore import ImageEntry

__all__ = ["DicomwebEntry", "DicomwebSource", "DicomwebApi", "CACHE_DIR", "attach_dicomweb"]

log = logging.getLogger(__name__)

#: The cache folder's name inside the datastore (hidden: the folder scan skips it).
CACHE_DIR = ".dicomweb"
_PARTIAL = ".partial-"


@dataclass(frozen=True)
class DicomwebEntry(ImageEntry):
    """A series of the DICOMweb server; ``path`` is its cache folder (filled when opened)."""

    study_uid: str = ""

    @property
    def label_key(self) -> str:
        return f"dicomweb/{self.series_uid}"


class DicomwebApi(Protocol):
    """What the source needs of a DICOMweb client (:mod:`medseg.io.dicomweb` by default)."""

    def list_series(self, ref: DicomwebRef, *, timeout: float) -> list[DicomwebSeries]: ...

    def download_series(
        self, ref: DicomwebRef, dest_dir: Path, *, timeout: float
    ) -> tuple[DicomwebRef, int]: ...

    def push_instances(
        self, ref: DicomwebRef, datasets: Sequence[Any], *, timeout: float
    ) -> Any: ...


class _IoApi:
    """:class:`DicomwebApi` on :mod:`medseg.io.dicomweb` (dicomweb-client)."""

    def list_series(self, ref: DicomwebRef, *, timeout: float) -> list[DicomwebSeries]:
        from medseg.io.dicomweb import list_series

        return list_series(ref, timeout=timeout)

    def download_series(
        self, ref: DicomwebRef, dest_dir: Path, *, timeout: float
    ) -> tuple[DicomwebRef, int]:
        from medseg.io.dicomweb import download_series

        return download_series(ref, dest_dir=dest_dir, timeout=timeout)

    def push_instances(self, ref: DicomwebRef, datasets: Sequence[Any], *, timeout: float) -> Any:
        from medseg.io.dicomweb import push_instances

        return push_instances(ref, datasets, timeout=timeout)


def _entry_id(series_uid: str) -> str:
    return hashlib.blake2b(f"dicomweb\x00{series_uid}".encode(), digest_size=8).hexdigest()


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())


class DicomwebSource:
    """The image series of one DICOMweb server, cached under ``root/.dicomweb`` (thread-safe).

    Args:
        url: the DICOMweb root (``http(s)://...`` or ``dicomweb://...``); a study URL lists
            only that study, a series URL only that series.
        root: the datastore folder.
        max_bytes: cache size in bytes (see the module docstring).
        keep: series always kept in the cache (the most recently used).
        list_ttl_s: seconds a QIDO-RS listing is reused.
        timeout: seconds per DICOMweb request.
        api: the DICOMweb client (tests pass a fake).
    """

    def __init__(
        self, url: str, root: Path, *, max_bytes: int = 4 << 30, keep: int = 4,
        list_ttl_s: float = 10.0, timeout: float = 60.0, api: DicomwebApi | None = None,
    ) -> None:  # fmt: skip
        self.ref = parse_dicomweb_url(url)
        self.cache_dir = Path(root) / CACHE_DIR
        self.max_bytes, self.keep = int(max_bytes), max(1, int(keep))
        self.list_ttl_s, self.timeout = float(list_ttl_s), float(timeout)
        self.api: DicomwebApi = api or _IoApi()
        self.last_error: str | None = None
        self._entries: list[DicomwebEntry] = []
        self._listed_at = -np.inf
        self._lock = threading.Lock()
        self._list_lock = threading.Lock()
        self._fetch_locks: dict[str, threading.Lock] = {}
        self.sweep()

    # ---- listing -----------------------------------------------------------------------
    def sweep(self) -> list[str]:
        """Remove partial fetches a crash left in the cache; returns their names."""
        if not self.cache_dir.is_dir():
            return []
        gone = [p.name for p in self.cache_dir.iterdir() if p.name.startswith(_PARTIAL)]
        for name in gone:
            shutil.rmtree(self.cache_dir / name, ignore_errors=True)
        if gone:
            log.warning("removed %d interrupted DICOMweb fetch(es) in %s", len(gone),
                        self.cache_dir)  # fmt: skip
        return gone

    def _entry(self, s: DicomwebSeries) -> DicomwebEntry:
        label = s.description or s.modality
        count = f" ({s.num_instances} slices)" if (s.num_instances or 0) > 1 else ""
        rel = f"{CACHE_DIR}/{s.series_uid}"
        return DicomwebEntry(
            id=_entry_id(s.series_uid), name=f"DICOMweb/{label}{count} [{s.series_uid[-8:]}]",
            rel=rel, path=self.cache_dir / s.series_uid, format="dicom",
            series_uid=s.series_uid, modality=s.modality, study_uid=s.study_uid,
        )  # fmt: skip

    def series(self, *, strict: bool = False) -> list[DicomwebEntry]:
        """The server's image series (QIDO-RS, cached ``list_ttl_s`` seconds).

        ``strict``: always ask the server and raise its error (``DicomwebUnavailable`` when
        it is down); otherwise an error is logged and the last listing returned.
        """
        with self._list_lock:
            if not strict and time.monotonic() - self._listed_at < self.list_ttl_s:
                return list(self._entries)
            try:
                found = self.api.list_series(self.ref, timeout=self.timeout)
            except InputError as exc:
                self.last_error = str(exc)
                self._listed_at = time.monotonic()  # do not retry on every scan
                if strict:
                    raise
                log.warning("DICOMweb series not listed (showing the last listing): %s", exc)
                return list(self._entries)
            images = [s for s in found if s.modality.upper() not in NON_IMAGE_MODALITIES]
            self._entries = [self._entry(s) for s in images if s.series_uid]
            self._listed_at, self.last_error = time.monotonic(), None
            return list(self._entries)

    def merge(self, local: list[ImageEntry]) -> list[ImageEntry]:
        """``local`` entries plus the server's series not among them, sorted by name."""
        uids = {e.series_uid for e in local if e.series_uid}
        remote = [e for e in self.series() if e.series_uid not in uids]
        return sorted([*local, *remote], key=lambda e: e.name.lower())

    # ---- fetching ----------------------------------------------------------------------
    def is_cached(self, entry: DicomwebEntry) -> bool:
        return entry.path.is_dir()

    def prepare(self, entry: ImageEntry) -> ImageEntry:
        """Make sure a DICOMweb series is in the cache (WADO-RS when it is not); other
        entries are returned as they are. Raises ``InputError`` / ``DicomwebUnavailable``."""
        if not isinstance(entry, DicomwebEntry):
            return entry
        with self._lock:
            lock = self._fetch_locks.setdefault(str(entry.series_uid), threading.Lock())
        with lock:
            if entry.path.is_dir():
                os.utime(entry.path)  # most recently used
                return entry
            self._fetch(entry)
        self._evict(keep=entry.path)
        return entry

    def _fetch(self, entry: DicomwebEntry) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=_PARTIAL, dir=self.cache_dir))
        ref = DicomwebRef(self.ref.base_url, entry.study_uid or None, entry.series_uid)
        try:
            _, count = self.api.download_series(ref, partial, timeout=self.timeout)
            self._check_download(partial, entry)
            os.rename(partial, entry.path)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        log.info("fetched DICOMweb series %s (%d files) into %s", entry.series_uid, count,
                 entry.path)  # fmt: skip

    @staticmethod
    def _check_download(folder: Path, entry: DicomwebEntry) -> None:
        """The downloaded files hold the series (headers only; decoding comes at load)."""
        from medseg.io.dicom import list_dicom_series

        try:
            found = list_dicom_series(folder, recursive=False)
        except InputError as exc:
            raise InputError(f"DICOMweb series {entry.series_uid}: the server sent no "
                             f"readable DICOM files ({exc})") from exc  # fmt: skip
        if entry.series_uid not in {s.series_uid for s in found}:
            raise InputError(f"DICOMweb series {entry.series_uid}: the server sent other "
                             f"series ({', '.join(s.series_uid for s in found)})")  # fmt: skip

    def cached(self) -> list[Path]:
        """The cached series folders, most recently used first."""
        if not self.cache_dir.is_dir():
            return []
        folders = [p for p in self.cache_dir.iterdir()
                   if p.is_dir() and not p.name.startswith(_PARTIAL)]  # fmt: skip
        return sorted(folders, key=lambda p: p.stat().st_mtime_ns, reverse=True)

    def _evict(self, keep: Path) -> None:
        with self._lock:
            folders = [p for p in self.cached() if p != keep]
            total = _folder_bytes(keep) + sum(_folder_bytes(p) for p in folders)
            for folder in folders[self.keep - 1 :][::-1]:  # oldest first, keep the newest
                if total <= self.max_bytes:
                    break
                size = _folder_bytes(folder)
                shutil.rmtree(folder, ignore_errors=True)
                total -= size
                log.info("DICOMweb cache: removed series %s (%d bytes)", folder.name, size)

    # ---- pushing -----------------------------------------------------------------------
    def push_labels(
        self, entry: ImageEntry, image: Image, labels: np.ndarray, names: dict[int, str]
    ) -> dict[str, Any]:
        """Store ``labels`` (``image.shape``, on the series' grid) as a DICOM-SEG that
        references the series, on the DICOMweb server (STOW-RS); returns the SEG's UIDs."""
        import pydicom

        from medseg.io.dicomseg import save_dicom_seg

        if not isinstance(entry, DicomwebEntry):
            raise InputError(f"{entry.name} is not a DICOMweb series: only those are pushed")
        self.prepare(entry)
        source = LabelMap.like(image, np.asarray(labels), label_names=names)
        with tempfile.TemporaryDirectory(prefix="medseg-dicomweb-seg-") as tmp:
            path = save_dicom_seg(source, entry.path, Path(tmp) / "seg.dcm", names,
                                  series_uid=entry.series_uid)  # fmt: skip
            seg = pydicom.dcmread(path)
        ref = DicomwebRef(self.ref.base_url, str(seg.StudyInstanceUID))
        self.api.push_instances(ref, [seg], timeout=self.timeout)
        log.info("stored DICOM-SEG %s of %s on %s", seg.SeriesInstanceUID, entry.series_uid,
                 self.ref.base_url)  # fmt: skip
        return {
            "stored_on": self.ref.base_url,
            "study_uid": str(seg.StudyInstanceUID),
            "series_uid": str(seg.SeriesInstanceUID),
            "sop_instance_uid": str(seg.SOPInstanceUID),
            "referenced_series_uid": str(entry.series_uid),
        }


def attach_dicomweb(datastore: Any, config: Any, **options: Any) -> DicomwebSource | None:
    """Give ``datastore`` the source of ``config.dicomweb`` (None without one)."""
    if not config.dicomweb:
        return None
    source = DicomwebSource(
        config.dicomweb, datastore.root, max_bytes=config.dicomweb_cache_bytes,
        keep=config.max_images_loaded, **options,
    )  # fmt: skip
    datastore.remote = source
    log.info("DICOMweb series from %s (cache %s)", source.ref, source.cache_dir)
    return source
