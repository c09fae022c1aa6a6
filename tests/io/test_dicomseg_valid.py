"""Every DICOM-SEG medseg writes passes ``dciodvfy``; blank source Study/Series UIDs get
generated ones (stable per series) so the SEG references a real series."""

from __future__ import annotations

import logging

import numpy as np
import pydicom
import pytest
from dicom_validation import check_dciodvfy, ct_small_series  # tests/_support

from medseg.io import LabelMap, load, load_label, save_dicom_seg
from medseg.io.dicomseg import stable_uid


def _square(src, value: int = 1) -> LabelMap:
    arr = np.zeros(src.shape, np.uint8)
    arr[1, 40:60, 50:80] = value
    arr[2, 0:3, 0:3] = value
    return LabelMap.like(src, arr, {value: "square"})


def test_ct_small_series_seg_is_valid(tmp_path):
    folder = ct_small_series(tmp_path / "ct", 3)
    src = load(folder)
    assert src.shape == (3, 128, 128)
    out = save_dicom_seg(_square(src), folder, tmp_path / "seg.dcm")
    check_dciodvfy(out)
    ds = pydicom.dcmread(out)
    first = pydicom.dcmread(src.meta["files"][0], stop_before_pixels=True)
    assert ds.StudyInstanceUID == first.StudyInstanceUID
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == src.meta["series_uid"]
    assert len(src.meta["series_uid"]) > 10


def test_blank_uids_are_generated_stable_and_valid(tmp_path, caplog):
    folder = ct_small_series(tmp_path / "ct", 3, blank_uids=True)
    src = load(folder)
    assert src.meta["series_uid"] == ""
    with caplog.at_level(logging.WARNING, logger="medseg.io.dicomseg"):
        first = save_dicom_seg(_square(src), folder, tmp_path / "a" / "seg.dcm")
    assert [r.message.split(": ", 1)[1].split(";")[0] for r in caplog.records] == [
        "3 of 3 source file(s) have no StudyInstanceUID",
        "3 of 3 source file(s) have no SeriesInstanceUID",
    ]
    second = save_dicom_seg(_square(src, 2), folder, tmp_path / "b" / "seg.dcm")
    check_dciodvfy(first)
    a, b = pydicom.dcmread(first), pydicom.dcmread(second)
    sops = list(src.meta["sop_instance_uids"])
    assert a.StudyInstanceUID == b.StudyInstanceUID == stable_uid("study", sops)
    ref = a.ReferencedSeriesSequence[0].SeriesInstanceUID
    assert ref == b.ReferencedSeriesSequence[0].SeriesInstanceUID == stable_uid("series", sops)
    assert ref != a.StudyInstanceUID and ref != a.SeriesInstanceUID
    assert stable_uid("series", sops[::-1]) == ref  # slice order does not matter
    # The files on disk keep their blank UIDs.
    assert all(pydicom.dcmread(f).SeriesInstanceUID == "" for f in src.meta["files"])
    np.testing.assert_array_equal(load_label(first, reference=folder).array, _square(src).array)


def test_seg_beside_blank_uid_series_finds_it(tmp_path):
    folder = ct_small_series(tmp_path / "ct", 3, blank_uids=True)
    src = load(folder)
    back = load_label(save_dicom_seg(_square(src), folder, tmp_path / "seg.dcm"))
    assert back.meta["source"] == str(folder)
    assert back.same_geometry(src, atol=1e-6)
    np.testing.assert_array_equal(back.array, _square(src).array)


def test_totalseg_series_seg_is_valid(tmp_path, shared_data):
    folder = shared_data / "totalseg_ref" / "dicom" / "example_ct_dicom"
    if not folder.is_dir():
        pytest.skip(f"{folder} is not available")
    src = load(folder)
    arr = np.zeros(src.shape, np.uint8)
    arr[9:11, 200:300, 200:300] = 1
    out = save_dicom_seg(LabelMap.like(src, arr), folder, tmp_path / "seg.dcm")
    check_dciodvfy(out)
    ds = pydicom.dcmread(out)
    sops = list(src.meta["sop_instance_uids"])
    assert ds.StudyInstanceUID == stable_uid("study", sops)
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == stable_uid("series", sops)
    np.testing.assert_array_equal(load_label(out, reference=folder).array, arr)


def test_check_dciodvfy_fails_on_errors(tmp_path):
    folder = ct_small_series(tmp_path / "ct", 3)
    ds = pydicom.dcmread(save_dicom_seg(_square(load(folder)), folder, tmp_path / "ok.dcm"))
    ds.StudyInstanceUID = ""
    ds.save_as(tmp_path / "bad.dcm")
    with pytest.raises(pytest.fail.Exception, match=r"(?s)1 error\(s\).*<StudyInstanceUID>"):
        check_dciodvfy(tmp_path / "bad.dcm")


def test_check_dciodvfy_without_the_tool(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dciodvfy on it
    monkeypatch.delenv("MEDSEG_REQUIRE_DCIODVFY", raising=False)
    with pytest.raises(pytest.skip.Exception, match="dciodvfy"):
        check_dciodvfy(tmp_path / "x.dcm")
    monkeypatch.setenv("MEDSEG_REQUIRE_DCIODVFY", "1")
    with pytest.raises(pytest.fail.Exception, match="MEDSEG_REQUIRE_DCIODVFY is set"):
        check_dciodvfy(tmp_path / "x.dcm")
