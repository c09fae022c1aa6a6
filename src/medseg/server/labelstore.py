"""Label versions saved next to the data: ``<datastore>/labels/<image>/vNNNN.<ext>``.

Every save creates a new version; no version is ever overwritten or deleted. Restoring a
version saves a copy of it as the newest version (so the history shows the restore).

Per version there are two files:

- ``v0003.png`` (2D images) or ``v0003.nii.gz`` (volumes): the label map on the image grid
  (0 = background, 1..N = labels), readable by ``medseg.io.load_label`` and any viewer;
- ``v0003.json``: the label names and colours, creation time, note, voxel counts and, for a
  restore, the version it restores.

The version number is claimed by creating the JSON file exclusively (``O_EXCL``) before
anything is written, so two savers (threads or processes) never get the same number; the
data file is written atomically (temporary file, ``fsync``, rename, ``fsync`` of the
folder) and the JSON last, so a version is listed only once it is complete.

A crash (``kill -9``) can leave an empty claim file and temporary files behind; the store
sweeps those older than ``ORPHAN_AGE_S`` when it is created (server start-up). A bad
entry in the labels folder (a symbolic link out of it, an unreadable file) hides that
image's versions and refuses saves for it, and affects no other image.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.io.atomic import fsync_dir
from medseg.io.image import Image, LabelMap
from medseg.server.datastore import Datastore, ImageEntry, NotFound, inside

__all__ = ["LabelInfo", "VersionInfo", "LabelStore", "ORPHAN_AGE_S"]

log = logging.getLogger(__name__)

_VERSION_FILE = re.compile(r"^v(\d{4,})\.json$")
_TEMP_FILE = re.compile(r"^\.v\d{4,}\..+")  # atomic_path's temporaries of vNNNN.* files
_DATA_SUFFIXES = (".png", ".nii.gz")
#: Claim and temporary files older than this (seconds) are a crashed save's leftovers.
ORPHAN_AGE_S = 600.0


@dataclass(frozen=True)
class LabelInfo:
    """A named label: its value in the label map, name and display colour ``#rrggbb``."""

    value: int
    name: str
    color: str


@dataclass(frozen=True)
class VersionInfo:
    """Metadata of one saved version."""

    version: int
    file: str
    created: str
    labels: tuple[LabelInfo, ...]
    note: str = ""
    restored_from: int | None = None
    voxels: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "file": self.file,
            "created": self.created,
            "labels": [vars(label) for label in self.labels],
            "note": self.note,
            "restored_from": self.restored_from,
            "voxels": {str(k): v for k, v in self.voxels.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VersionInfo:
        return cls(
            version=int(d["version"]),
            file=str(d["file"]),
            created=str(d["created"]),
            labels=tuple(
                LabelInfo(int(x["value"]), str(x["name"]), str(x["color"]))
                for x in d.get("labels", [])
            ),
            note=str(d.get("note", "")),
            restored_from=d.get("restored_from"),
            voxels={int(k): int(v) for k, v in d.get("voxels", {}).items()},
        )


class LabelStore:
    """Versioned label maps of the images of a :class:`Datastore` (thread-safe)."""

    def __init__(self, datastore: Datastore, sweep: bool = True) -> None:
        self.datastore = datastore
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        if sweep:
            self.sweep_orphans()

    def sweep_orphans(self, min_age_s: float = ORPHAN_AGE_S) -> list[str]:
        """Remove what crashed saves left: empty claim files (with the data file of their
        version) and temporary files, older than ``min_age_s``; returns their relative
        paths. Saves in progress (younger files) are left alone."""
        base = self.datastore.labels_dir
        if not base.is_dir():
            return []
        now = time.time()
        removed: list[str] = []
        for dirpath, _, filenames in os.walk(base, followlinks=False):
            folder = Path(dirpath)
            for name in filenames:
                path = folder / name
                try:
                    st = path.lstat()
                except OSError:
                    continue
                if now - st.st_mtime < min_age_s or not path.is_file() or path.is_symlink():
                    continue
                victims = []
                if _TEMP_FILE.match(name):
                    victims = [path]
                elif _VERSION_FILE.match(name) and st.st_size == 0:
                    stem = name[: -len(".json")]
                    victims = [path, *(folder / f"{stem}{ext}" for ext in _DATA_SUFFIXES)]
                for victim in victims:
                    with contextlib.suppress(FileNotFoundError):
                        victim.unlink()
                        removed.append(victim.relative_to(base).as_posix())
        if removed:
            log.warning("removed %d files left by interrupted label saves: %s", len(removed),
                        ", ".join(removed[:10]))  # fmt: skip
        return removed

    def folder(self, entry: ImageEntry) -> Path:
        """The image's label folder (inside ``<datastore>/labels``)."""
        base = self.datastore.labels_dir
        path = base / entry.label_key
        if not inside(base, path) or path.resolve() == base.resolve():
            raise InputError(f"label folder for {entry.name!r} would leave the datastore")
        return path

    def _folder_lock(self, entry: ImageEntry) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(entry.id, threading.Lock())

    # ---- reading ---------------------------------------------------------------------
    def versions(self, entry: ImageEntry) -> list[VersionInfo]:
        """Complete versions, oldest first.

        An unusable label folder (a link out of ``labels/``, unreadable) gives no versions
        (logged), so it affects only this image; unreadable version files are skipped.
        """
        try:
            folder = self.folder(entry)
            if not folder.is_dir():
                return []
            paths = [p for p in folder.iterdir() if _VERSION_FILE.match(p.name)]
        except (InputError, OSError) as exc:
            log.warning("labels of %s are not readable: %s", entry.name, exc)
            return []
        out = [info for p in paths if (info := self._version_file(folder, p)) is not None]
        return sorted(out, key=lambda v: v.version)

    @staticmethod
    def _version_file(folder: Path, path: Path) -> VersionInfo | None:
        """The version described by ``path``, or None for a claimed (still empty), foreign,
        unreadable or linked-out file, or one whose data file is missing."""
        try:
            if not inside(folder, path) or not path.is_file():
                return None
            info = VersionInfo.from_dict(json.loads(path.read_text()))
            data = folder / info.file
            ok = data.is_file() and inside(folder, data) and data.parent == folder
        except (ValueError, KeyError, TypeError, AttributeError, OSError):
            return None
        return info if ok else None

    def get(self, entry: ImageEntry, version: int | str) -> VersionInfo:
        """Version ``version`` (an int or ``"latest"``); raises ``NotFound``."""
        versions = self.versions(entry)
        if version == "latest":
            if not versions:
                raise NotFound(f"{entry.name}: no saved labels yet")
            return versions[-1]
        for v in versions:
            if v.version == int(version):
                return v
        raise NotFound(f"{entry.name}: no label version {version}")

    def read(
        self, entry: ImageEntry, version: int | str, image: Image
    ) -> tuple[VersionInfo, np.ndarray]:
        """Metadata and label array of a version (checked against ``image``'s shape)."""
        from medseg.io.readers import load_label

        info = self.get(entry, version)
        try:
            labels = load_label(self.folder(entry) / info.file).array
        except InputError as exc:  # the message starts with the absolute path: drop it
            reason = str(exc).replace(str(self.folder(entry)) + os.sep, "")
            raise InputError(f"{entry.name}: label version {info.version}: {reason}") from exc
        if labels.shape != image.shape:
            raise InputError(
                f"{entry.name}: label version {info.version} has shape {labels.shape}, "
                f"the image {image.shape}"
            )
        return info, labels

    # ---- writing ---------------------------------------------------------------------
    def _claim(self, folder: Path) -> int:
        folder.mkdir(parents=True, exist_ok=True)
        while True:
            numbers = [
                int(m.group(1)) for p in folder.iterdir() if (m := _VERSION_FILE.match(p.name))
            ]
            n = max(numbers, default=0) + 1
            try:
                fd = os.open(folder / f"v{n:04d}.json", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                continue
            os.close(fd)
            fsync_dir(folder)
            return n

    def save(
        self,
        entry: ImageEntry,
        image: Image,
        array: np.ndarray,
        labels: list[LabelInfo],
        note: str = "",
        restored_from: int | None = None,
    ) -> VersionInfo:
        """Write ``array`` (the image's spatial shape) as a new version; returns its info."""
        from medseg.io.atomic import atomic_path
        from medseg.io.writers import save

        arr = np.asarray(array)
        if arr.shape != image.shape:
            raise InputError(f"label shape {arr.shape} does not match the image {image.shape}")
        declared = {lab.value for lab in labels}
        present = {int(v) for v in np.unique(arr) if v != 0}
        if present - declared:
            raise InputError(f"label values {sorted(present - declared)} have no name; "
                             "declare every value used")  # fmt: skip
        dtype = np.uint8 if max(declared, default=0) < 256 else np.uint16
        names = {lab.value: lab.name for lab in labels}
        label_map = LabelMap.like(image, arr.astype(dtype), label_names=names)
        folder = self.folder(entry)
        with self._folder_lock(entry):
            n = self._claim(folder)
            meta_path = folder / f"v{n:04d}.json"
            data_name = f"v{n:04d}" + (".png" if image.ndim == 2 else ".nii.gz")
            counts = np.bincount(arr.ravel().astype(np.int64))
            info = VersionInfo(
                version=n,
                file=data_name,
                created=datetime.now(UTC).isoformat(timespec="seconds"),
                labels=tuple(sorted(labels, key=lambda lab: lab.value)),
                note=note,
                restored_from=restored_from,
                voxels={i: int(c) for i, c in enumerate(counts) if i and c},
            )
            try:
                save(label_map, folder / data_name)
                with atomic_path(meta_path) as tmp:
                    tmp.write_text(json.dumps(info.to_dict(), indent=1))
            except BaseException:
                for p in (meta_path, folder / data_name):
                    with contextlib.suppress(FileNotFoundError):
                        p.unlink()
                raise
        log.info("saved labels of %s as version %d (%s)", entry.name, n, data_name)
        return info

    def restore(self, entry: ImageEntry, version: int, image: Image) -> VersionInfo:
        """Save a copy of ``version`` as the newest version."""
        info, arr = self.read(entry, version, image)
        return self.save(entry, image, arr, list(info.labels), f"restored version {info.version}",
                         restored_from=info.version)  # fmt: skip
