"""Exact lines of ``medseg info``: column width from the longest key, guessed modality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from synthetic_dicom import write_series  # tests/_support (pytest's pythonpath)

from medseg.cli.main import main
from medseg.io import Image, save


def _hu_volume(tmp_path: Path) -> Path:
    """(2, 3, 4) int16: slice 0 air (-1000), slice 1 soft tissue (40) with one 300 voxel."""
    arr = np.full((2, 3, 4), -1000, np.int16)
    arr[1] = 40
    arr[1, 0, 0] = 300
    return save(Image(arr, spacing=(2.0, 1.0, 1.0)), tmp_path / "ct.nii.gz")


def test_nifti_ct_shows_guessed_modality(tmp_path: Path, capsys) -> None:
    path = _hu_volume(tmp_path)
    assert main(["info", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:] == [
        "format:      nifti",
        "modality:    CT (guessed from intensities)",
        "shape:       (2, 3, 4)  axes ZYX",
        "dtype:       int16",
        "spacing:     (2, 1, 1) mm, array order",
        "origin:      (0, 0, 0) mm, LPS (x, y[, z])",
        "orientation: LPS  (ITK/DICOM, LPS world)",
        "             LPS  (nibabel aff2axcodes, RAS world)",
        "range:       -1000 .. 300",
    ]
    assert lines[0] == f"source:      {path}"


def test_json_keeps_stated_modality_and_adds_the_guess(tmp_path: Path, capsys) -> None:
    assert main(["info", str(_hu_volume(tmp_path)), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["modality"] == "unknown" and info["modality_guessed"] == "CT"


def test_no_guess_for_non_ct_values(tmp_path: Path, capsys) -> None:
    arr = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    path = save(Image(arr), tmp_path / "mr.nii.gz")
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["modality"] == "unknown" and "modality_guessed" not in info
    assert main(["info", str(path)]) == 0
    assert "modality:    unknown" in capsys.readouterr().out.splitlines()


def test_dicom_keys_padded_to_longest(tmp_path: Path, capsys) -> None:
    write_series(tmp_path / "d", shape=(2, 3, 4), series_uid="1.2.3.1")
    assert main(["info", str(tmp_path / "d")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:3] == ["format:          dicom", "modality:        CT"]
    assert "orientation:     LIP  (ITK/DICOM, LPS world)" in lines
    assert "                 LIP  (nibabel aff2axcodes, RAS world)" in lines
    assert "series uid:      1.2.3.1" in lines
    assert "transfer syntax: Explicit VR Little Endian (1.2.840.10008.1.2.1)" in lines
    assert lines[-2:] == [
        "series in folder (1):",
        " * 1.2.3.1  CT      2 x 3x4  2 file(s)  'synthetic'",
    ]
