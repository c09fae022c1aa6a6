"""DICOM validity checks for the tests: ``dciodvfy`` (Debian ``dicom3tools``) and a small CT
series built from pydicom's ``CT_small.dcm``.

``check_dciodvfy(path)`` fails the test on any ``Error`` line of ``dciodvfy``; it skips only
when ``dciodvfy`` is not installed and ``MEDSEG_REQUIRE_DCIODVFY`` is not set (``.ci/run``
sets it where it installed ``dicom3tools``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = ["check_dciodvfy", "ct_small_series"]


def check_dciodvfy(path: str | os.PathLike[str]) -> str:
    """Run ``dciodvfy`` on ``path``; fail on any ``Error`` line, return its whole output."""
    exe = shutil.which("dciodvfy")
    if exe is None:
        if os.environ.get("MEDSEG_REQUIRE_DCIODVFY"):
            pytest.fail("MEDSEG_REQUIRE_DCIODVFY is set but dciodvfy (dicom3tools) is missing")
        pytest.skip("dciodvfy (Debian dicom3tools) is not installed")
    run = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=120, check=False)
    output = run.stdout + run.stderr
    errors = [line for line in output.splitlines() if line.startswith("Error")]
    if errors:
        pytest.fail(f"dciodvfy {path}: {len(errors)} error(s):\n" + "\n".join(errors))
    return output


def ct_small_series(folder: Path, slices: int = 3, *, blank_uids: bool = False) -> Path:
    """``slices`` copies of pydicom's ``CT_small.dcm`` (128 x 128, 0.661 mm pixels) stacked
    5 mm apart along +z as one series (new series and SOP Instance UIDs, one file each).
    ``blank_uids`` empties StudyInstanceUID and SeriesInstanceUID, as anonymised exports do.
    """
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    src = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    x, y, z = (float(v) for v in src.ImagePositionPatient)
    for k in range(slices):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID = "" if blank_uids else series_uid
        if blank_uids:
            ds.StudyInstanceUID = ""
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [x, y, z + 5.0 * k]
        ds.SliceLocation = z + 5.0 * k
        ds.save_as(folder / f"slice{k:02d}.dcm", enforce_file_format=True)
    return folder
