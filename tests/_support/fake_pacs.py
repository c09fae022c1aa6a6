"""A fake DICOMweb server for the fast tests of ``medseg.server.dicomweb_source``: the
:class:`~medseg.server.dicomweb_source.DicomwebApi` calls answered from local folders.

``FakePacs.add(folder)`` offers the series in ``folder`` (one file per instance); ``down``
makes every call raise ``DicomwebUnavailable`` as a refused connection does;
``fail_after = N`` makes the next download stop with that error after N files (a broken
transfer). ``stored`` holds the datasets pushed (STOW-RS), ``downloads`` counts WADO calls.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pydicom

from medseg.errors import InputError
from medseg.io.dicomweb import DicomwebRef, DicomwebSeries, DicomwebUnavailable

__all__ = ["FakePacs"]


class FakePacs:
    def __init__(self) -> None:
        self.series: dict[str, tuple[DicomwebSeries, list[Path]]] = {}
        self.down = False
        self.fail_after: int | None = None
        self.stored: list[Any] = []
        self.downloads = 0
        self.listings = 0

    def add(self, folder: Path) -> DicomwebSeries:
        files = sorted(p for p in folder.iterdir() if p.is_file())
        ds = pydicom.dcmread(files[0], stop_before_pixels=True)
        info = DicomwebSeries(
            study_uid=str(ds.StudyInstanceUID), series_uid=str(ds.SeriesInstanceUID),
            modality=str(ds.Modality), description=str(ds.get("SeriesDescription", "")),
            num_instances=len(files), number=None,
        )  # fmt: skip
        self.series[info.series_uid] = (info, files)
        return info

    def _check(self, ref: DicomwebRef) -> None:
        if self.down:
            raise DicomwebUnavailable(f"{ref.base_url}: cannot reach the DICOMweb server "
                                      "(is it running? Connection refused)")  # fmt: skip

    def list_series(self, ref: DicomwebRef, *, timeout: float) -> list[DicomwebSeries]:
        self._check(ref)
        self.listings += 1
        return [
            info for info, _ in self.series.values()
            if ref.study_uid in (None, info.study_uid) and ref.series_uid in (None, info.series_uid)
        ]  # fmt: skip

    def download_series(
        self, ref: DicomwebRef, dest_dir: Path, *, timeout: float
    ) -> tuple[DicomwebRef, int]:
        self._check(ref)
        if ref.series_uid not in self.series:
            raise InputError(f"{ref}: no series {ref.series_uid} in the server")
        self.downloads += 1
        _, files = self.series[ref.series_uid]
        for i, f in enumerate(files):
            if self.fail_after is not None and i == self.fail_after:
                self.fail_after = None
                raise DicomwebUnavailable(f"{ref}: DICOMweb series retrieval (WADO-RS) "
                                          "failed: HTTP 503")  # fmt: skip
            shutil.copyfile(f, Path(dest_dir) / f"{i:05d}.dcm")
        return ref, len(files)

    def push_instances(self, ref: DicomwebRef, datasets: Sequence[Any], *, timeout: float) -> Any:
        self._check(ref)
        self.stored.extend(datasets)
        return [str(ds.SOPInstanceUID) for ds in datasets]
