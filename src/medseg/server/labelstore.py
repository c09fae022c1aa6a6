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
data file is written atomically (temporary file, then rename) and the JSON last, so a
version is listed only once it is complete.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.io.image import Image, LabelMap
from medseg.server.datastore import Datastore, ImageEntry, NotFound, inside

__all__ = ["LabelInfo", "VersionInfo", "LabelStore"]

log = logging.getLogger(__name__)

_VERSION_FILE = re.compile(r"^v(\d{4,})\.json$")


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

    def __init__(self, datastore: Datastore) -> None:
        self.datastore = datastore
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

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
        """Complete versions, oldest first."""
        folder = self.folder(entry)
        if not folder.is_dir():
            return []
        out = []
        for path in folder.iterdir():
            if not _VERSION_FILE.match(path.name):
                continue
            try:
                info = VersionInfo.from_dict(json.loads(path.read_text()))
            except (ValueError, KeyError, TypeError):
                continue  # a version being written (claimed, still empty) or a foreign file
            if (folder / info.file).is_file() and inside(folder, folder / info.file):
                out.append(info)
        return sorted(out, key=lambda v: v.version)

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
        labels = load_label(self.folder(entry) / info.file).array
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
        log.info("saved labels of %s as version %d (%s)", entry.name, n, folder / data_name)
        return info

    def restore(self, entry: ImageEntry, version: int, image: Image) -> VersionInfo:
        """Save a copy of ``version`` as the newest version."""
        info, arr = self.read(entry, version, image)
        return self.save(entry, image, arr, list(info.labels), f"restored version {info.version}",
                         restored_from=info.version)  # fmt: skip
