"""Synthetic DICOM series written with pydicom, for self-contained DICOM tests.

Imported by ``tests/io/conftest.py`` (fixture ``make_series``) and by the CLI tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class SyntheticSeries:
    folder: Path
    series_uid: str
    hu: np.ndarray  # (Z, Y, X) HU values in slice order (along the normal)
    spacing: tuple[float, float, float]  # (sz, sy, sx)
    origin: tuple[float, float, float]  # IPP of the first slice
    iop: tuple[float, ...]
    files: list[Path]  # in slice order


_STUDY_UID = "1.2.826.0.1.3680043.8.498.1"
_FRAME_UID = "1.2.826.0.1.3680043.8.498.2"


def ct_dataset(path: Path) -> Any:
    """An empty CT Image Storage ``FileDataset`` for ``path``: file meta (Explicit VR Little
    Endian, a new SOP Instance UID) and the SOP Class/Instance UIDs, nothing else."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    return ds


def _slice_dataset(path: Path, tags: dict[str, Any], pixels: np.ndarray) -> Any:
    """One CT slice file: fixed patient/study tags, ``tags`` on top, int16 ``pixels``."""
    ds = ct_dataset(path)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^S", "P1", "", "O"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240101", "120000", "1", ""
    ds.ReferringPhysicianName, ds.Manufacturer, ds.SeriesNumber = "", "medseg-tests", 1
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = "1", "-1024", "HU"
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.astype(np.int16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return ds


def write_series(
    folder: Path,
    *,
    shape: tuple[int, int, int] = (4, 6, 5),
    spacing: tuple[float, float, float] = (2.5, 0.7, 0.8),
    origin: tuple[float, float, float] = (-10.0, 20.0, 30.0),
    iop: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0),
    series_uid: str | None = None,
    modality: str = "CT",
    description: str = "synthetic",
    seed: int = 0,
    gaps: tuple[float, ...] | None = None,
) -> SyntheticSeries:
    """A CT series (one file per slice, files named in shuffled order) with RescaleIntercept
    -1024, given spacing, origin and orientation (default: coronal, IOP rows along +x,
    columns along -z, so the slice normal is +y). ``gaps`` (``shape[0] - 1`` values, mm)
    places the slices irregularly instead of ``spacing[0]`` apart."""
    from pydicom.uid import generate_uid

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    stored = rng.integers(0, 2000, size=shape, dtype=np.int16)
    normal = np.cross(np.array(iop[:3]), np.array(iop[3:]))
    names = rng.permutation(shape[0])
    steps = [spacing[0]] * (shape[0] - 1) if gaps is None else list(gaps)
    offsets = np.concatenate([[0.0], np.cumsum(steps)])
    files = []
    for k in range(shape[0]):
        tags = {
            "StudyInstanceUID": _STUDY_UID,
            "SeriesInstanceUID": series_uid,
            "FrameOfReferenceUID": _FRAME_UID,
            "Modality": modality,
            "SeriesDescription": description,
            "InstanceNumber": k + 1,
            "ImageOrientationPatient": [f"{v:g}" for v in iop],
            "ImagePositionPatient": [f"{v:.4f}" for v in np.array(origin) + offsets[k] * normal],
            "PixelSpacing": [f"{spacing[1]:g}", f"{spacing[2]:g}"],
            "SliceThickness": f"{spacing[0]:g}",
        }
        path = folder / f"IM{names[k]:04d}_{series_uid[-6:]}"
        _slice_dataset(path, tags, stored[k])
        files.append(path)
    return SyntheticSeries(
        folder=folder,
        series_uid=series_uid,
        hu=stored.astype(np.int32) - 1024,
        spacing=spacing,
        origin=origin,
        iop=iop,
        files=files,
    )
