"""DICOM folders: list the series in a folder, read one series as a volume.

A folder may hold several series (files found recursively, grouped by SeriesInstanceUID).
``read_dicom`` reads the series asked for by ``series_uid``, else the largest one (most
slices/frames, then most bytes) and logs which one it chose and how many others exist.
Slices are sorted along the slice normal and read with SimpleITK's series reader, which
applies RescaleSlope/Intercept (CT in HU) and returns ITK/LPS geometry; the slice spacing
is the mean gap between ImagePositionPatient values. Irregular gaps (e.g. 202.5, 1.25, 1.25
mm) raise ``InputError`` unless ``irregular="mean"`` opts in to the mean-gap grid (with a
warning; see ``medseg.io.dicom_file``); tiny rounding differences only log a warning.
``meta`` gets ``series_uid``, ``study_uid``, ``frame_of_reference_uid``,
``sop_instance_uids`` (in slice order), ``files`` (in slice order), ``series_count`` and,
with ImagePositionPatient, the real ``slice_positions`` (LPS mm, slice order),
``slice_gaps`` and ``uniform_spacing``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.io.dicom_file import (
    compact_integers,
    decode_hint,
    dicom_uids,
    read_dicom_file,
    slice_geometry,
    sop_instance_uid,
    transfer_syntax,
)
from medseg.io.formats import is_dicom_file
from medseg.io.image import Image
from medseg.io.limits import SizeLimits, check_shape

__all__ = [
    "NON_IMAGE_MODALITIES",
    "DicomSeriesInfo",
    "list_dicom_series",
    "read_dicom",
    "read_series_headers",
]

log = logging.getLogger(__name__)

_DICOMDIR_SOP = "1.2.840.10008.1.3.10"
#: Modalities of series that hold no image to segment (segmentations, structures, reports,
#: presentation states, key objects, registrations, RT plans and doses).
NON_IMAGE_MODALITIES = ("SEG", "RTSTRUCT", "SR", "PR", "KO", "REG", "RTPLAN", "RTDOSE")


@dataclass(frozen=True)
class DicomSeriesInfo:
    """One series found in a folder.

    Attributes:
        series_uid, study_uid: SeriesInstanceUID / StudyInstanceUID.
        modality, description: Modality and SeriesDescription tags.
        num_files: number of files of the series.
        num_slices: total number of frames (slices) over all files.
        rows, columns: frame size in pixels (of the first file).
        size_bytes: total size of the files.
        files: the files, sorted by name.
    """

    series_uid: str
    study_uid: str
    modality: str
    description: str
    num_files: int
    num_slices: int
    rows: int
    columns: int
    size_bytes: int
    files: tuple[Path, ...] = field(repr=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(slices, rows, columns)``."""
        return (self.num_slices, self.rows, self.columns)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["files"] = [str(f) for f in self.files]
        return out


def _candidates(directory: Path, recursive: bool) -> list[Path]:
    found = directory.rglob("*") if recursive else directory.iterdir()
    files = sorted(p for p in found if p.is_file() and not p.name.startswith("."))
    return [p for p in files if p.suffix.lower() in (".dcm", ".dicom") or is_dicom_file(p)]


def _header(path: Path) -> Any | None:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:  # anything unreadable is not part of a series; logged by the caller
        return None
    if "SeriesInstanceUID" not in ds:
        return None
    sop = getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "")
    return None if sop == _DICOMDIR_SOP else ds


def list_dicom_series(directory: str | Path, *, recursive: bool = True) -> list[DicomSeriesInfo]:
    """All DICOM series under ``directory`` (with its subfolders unless ``recursive=False``),
    largest first (most slices, then most bytes).

    Raises ``InputError`` when the folder does not exist or holds no DICOM image files.
    """
    d = Path(directory).expanduser()
    if not d.is_dir():
        raise InputError(f"{d}: not a folder")
    groups: dict[str, list[tuple[Path, Any]]] = {}
    skipped = 0
    for path in _candidates(d, recursive):
        ds = _header(path)
        if ds is None:
            skipped += 1
            continue
        groups.setdefault(str(ds.SeriesInstanceUID), []).append((path, ds))
    if skipped:
        log.debug("%s: skipped %d files that are not DICOM series members", d, skipped)
    if not groups:
        raise InputError(f"{d}: no DICOM files found in this folder")
    infos = [_summarise(uid, members) for uid, members in groups.items()]
    return sorted(infos, key=lambda s: (-s.num_slices, -s.size_bytes, s.series_uid))


def _summarise(uid: str, members: list[tuple[Path, Any]]) -> DicomSeriesInfo:
    first = members[0][1]
    return DicomSeriesInfo(
        series_uid=uid,
        study_uid=str(first.get("StudyInstanceUID", "")),
        modality=str(first.get("Modality", "") or "unknown"),
        description=str(first.get("SeriesDescription", "")),
        num_files=len(members),
        num_slices=sum(int(ds.get("NumberOfFrames", 1) or 1) for _, ds in members),
        rows=int(first.get("Rows", 0) or 0),
        columns=int(first.get("Columns", 0) or 0),
        size_bytes=sum(p.stat().st_size for p, _ in members),
        files=tuple(p for p, _ in members),
    )


def choose_series(directory: Path, series_uid: str | None) -> tuple[DicomSeriesInfo, int]:
    """The series to read from ``directory`` and how many series the folder holds."""
    series = list_dicom_series(directory)
    if series_uid is not None:
        match = [s for s in series if s.series_uid == series_uid]
        if not match:
            have = ", ".join(f"{s.series_uid} ({s.modality}, {s.num_slices})" for s in series)
            raise InputError(f"{directory}: no series {series_uid}; the folder has: {have}")
        return match[0], len(series)
    # Derived objects (segmentations, structure sets) are not the image to read.
    images = [s for s in series if s.modality.upper() not in NON_IMAGE_MODALITIES] or series
    chosen = images[0]
    if len(series) > 1:
        log.info(
            "%s: %d series; reading the largest image series, %s (%s, %d slices, %r); "
            "%d other(s) - "
            "pick one with series_uid / --series",
            directory, len(series), chosen.series_uid, chosen.modality, chosen.num_slices,
            chosen.description, len(series) - 1,
        )  # fmt: skip
    return chosen, len(series)


def read_series_headers(
    info: DicomSeriesInfo, where: Path | str = "", irregular: str = "error"
) -> list[tuple[Path, Any]]:
    """Headers of the series' files sorted along the slice normal (or by InstanceNumber).

    Irregular slice positions raise ``InputError`` unless ``irregular="mean"``.
    """
    items = [(p, _header(p)) for p in info.files]
    items = [(p, ds) for p, ds in items if ds is not None]
    if all("ImagePositionPatient" in ds and "ImageOrientationPatient" in ds for _, ds in items):
        orients = {tuple(round(float(v), 4) for v in ds.ImageOrientationPatient) for _, ds in items}
        if len(orients) > 1:
            raise InputError(
                f"series {info.series_uid}: slices have {len(orients)} different orientations "
                "(localizer mixed in?); cannot stack them into one volume"
            )
        first = items[0][1]
        spacing = first.get("PixelSpacing") or [1.0, 1.0]
        order, _ = slice_geometry(
            first.ImageOrientationPatient,
            [ds.ImagePositionPatient for _, ds in items],
            spacing,
            f"{where or info.files[0].parent} series {info.series_uid}",
            irregular,
        )
        return [items[i] for i in order]
    return sorted(items, key=lambda it: int(it[1].get("InstanceNumber", 0) or 0))


def read_dicom(
    path: Path,
    *,
    series_uid: str | None = None,
    modality: str | None = None,
    irregular: str = "error",
    limits: SizeLimits | None = None,
) -> Image:
    """Read a DICOM file or a series from a DICOM folder (see the module docstring).

    For a folder, the chosen series' size (slices x rows x columns, from the headers) is
    checked against ``limits`` (``medseg.io.limits``) before any pixel data is read.
    """
    if path.is_file():
        image = read_dicom_file(path, modality=modality, irregular=irregular)
        if series_uid is not None and image.meta.get("series_uid") != series_uid:
            raise InputError(
                f"{path}: file belongs to series {image.meta.get('series_uid')}, not {series_uid}"
            )
        return image
    info, count = choose_series(path, series_uid)
    shape = (info.num_slices, info.rows, info.columns)
    check_shape(shape if info.num_slices > 1 else shape[1:], f"{path} series {info.series_uid}",
                limits)  # fmt: skip
    if info.num_files == 1:
        image = read_dicom_file(info.files[0], modality=modality, irregular=irregular)
    elif info.num_slices != info.num_files:
        raise InputError(
            f"{path}: series {info.series_uid} has {info.num_files} multi-frame files; "
            "read them one by one"
        )
    else:
        image = _read_series(info, path, modality, irregular)
    image.meta["series_count"] = count
    image.meta["path"] = str(path)
    return image


def _read_series(
    info: DicomSeriesInfo, path: Path, modality: str | None, irregular: str = "error"
) -> Image:
    import SimpleITK as sitk

    from medseg.io.volume import sitk_to_parts

    items = read_series_headers(info, path, irregular)
    if len({(int(ds.get("Rows", 0)), int(ds.get("Columns", 0))) for _, ds in items}) > 1:
        raise InputError(f"{path}: series {info.series_uid} mixes different slice sizes")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(p) for p, _ in items])
    # ITK prints its own non-uniform-spacing warning to stderr; slice_geometry logs it instead.
    warn = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        raise InputError(
            f"{path}: cannot read series {info.series_uid} ({decode_hint(items[0][1])}): "
            f"{str(exc).strip().splitlines()[-1]}"
        ) from exc
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warn)
    parts = sitk_to_parts(img, path)
    parts["array"] = compact_integers(parts["array"])
    first = items[0][1]
    meta: dict[str, Any] = {"path": str(path), "format": "dicom", **dicom_uids(first)}
    meta["sop_instance_uids"] = [sop_instance_uid(ds) for _, ds in items]
    meta["files"] = [str(p) for p, _ in items]
    meta["transfer_syntax"] = transfer_syntax(first)
    if "ImagePositionPatient" in first:
        positions = np.array([[float(v) for v in ds.ImagePositionPatient] for _, ds in items])
        meta["slice_positions"] = positions.tolist()
        normal = np.cross(parts["direction"][:, 0], parts["direction"][:, 1])
        gaps = np.diff(positions @ normal) if len(positions) > 1 else np.zeros(0)
        meta["slice_gaps"] = [float(g) for g in gaps]
        meta["uniform_spacing"] = bool(gaps.size < 2 or np.ptp(gaps) < 1e-3)
    return Image(
        **parts,
        modality=modality or str(first.get("Modality", "") or "unknown"),
        meta=meta,
    )
