"""DICOM-SEG export (highdicom) and reading back onto the source grid."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from medseg.errors import InputError
from medseg.io import LabelMap, load, load_label, save, save_dicom_seg


@pytest.fixture
def series_and_labels(tmp_path, make_series):
    s = make_series(tmp_path / "src", shape=(4, 6, 5), spacing=(2.5, 0.7, 0.8))
    src = load(s.folder)
    arr = np.zeros(src.shape, np.uint8)
    arr[1, 2:4, 1:3] = 3
    arr[2, 0, 0] = 1
    arr[3, 5, 4] = 1
    return s, src, LabelMap.like(src, arr, {1: "liver", 3: "spleen"})


def test_seg_file_content(tmp_path, series_and_labels):
    s, src, labels = series_and_labels
    out = save_dicom_seg(labels, s.folder, tmp_path / "out" / "seg.dcm")
    ds = pydicom.dcmread(out)
    assert ds.Modality == "SEG" and ds.SegmentationType == "BINARY"
    assert [seg.SegmentLabel for seg in ds.SegmentSequence] == ["liver", "spleen"]
    assert [seg.SegmentDescription for seg in ds.SegmentSequence] == [
        "label value 1",
        "label value 3",
    ]
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == s.series_uid
    referenced = {
        item.ReferencedSOPInstanceUID
        for item in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    assert referenced == set(src.meta["sop_instance_uids"])
    assert ds.StudyInstanceUID == src.meta["study_uid"]
    assert ds.FrameOfReferenceUID == src.meta["frame_of_reference_uid"]
    assert int(ds.NumberOfFrames) == 4 * 2  # every slice, for each of the 2 segments


def test_roundtrip_own_grid_reference_and_neighbour(tmp_path, series_and_labels):
    s, src, labels = series_and_labels
    # 1) SEG alone in another folder: rebuilt from its own frames.
    alone = load_label(save_dicom_seg(labels, s.folder, tmp_path / "out" / "seg.dcm"))
    # 2) With the source given explicitly.
    with_ref = load_label(tmp_path / "out" / "seg.dcm", reference=s.folder)
    # 3) SEG saved next to the source folder: the referenced series is found there.
    beside = load_label(save_dicom_seg(labels, s.folder, tmp_path / "seg2.dcm"))
    for back in (alone, with_ref, beside):
        assert back.same_geometry(src, atol=1e-4)
        np.testing.assert_array_equal(back.array, labels.array)
        assert back.label_names == {1: "liver", 3: "spleen"}
    assert beside.meta["source"] == str(s.folder)


def test_load_label_on_folder_prefers_seg_series(tmp_path, series_and_labels):
    s, _, labels = series_and_labels
    save_dicom_seg(labels, s.folder, s.folder / "seg.dcm")
    back = load_label(s.folder)
    np.testing.assert_array_equal(back.array, labels.array)
    # load() on the same folder still reads the CT (the largest series).
    assert load(s.folder).modality == "CT"


def test_label_map_from_nifti_on_same_grid(tmp_path, series_and_labels):
    s, _, labels = series_and_labels
    nii = load_label(save(labels, tmp_path / "l.nii.gz"))
    back = load_label(save_dicom_seg(nii, s.folder, tmp_path / "x" / "s.dcm", {3: "renamed"}))
    np.testing.assert_array_equal(back.array, labels.array)
    assert back.label_names == {1: "label 1", 3: "renamed"}


def test_export_errors(tmp_path, series_and_labels):
    s, src, labels = series_and_labels
    with pytest.raises(InputError, match="label map is empty"):
        save_dicom_seg(
            LabelMap.like(src, np.zeros(src.shape, np.uint8)), s.folder, tmp_path / "e.dcm"
        )
    moved = LabelMap(labels.array, spacing=(1, 1, 1))
    with pytest.raises(InputError, match="differs from the source series grid"):
        save_dicom_seg(moved, s.folder, tmp_path / "m.dcm")
    with pytest.raises(InputError, match=r"label shape \(2, 2\) does not match"):
        save_dicom_seg(np.zeros((2, 2), np.uint8), s.folder, tmp_path / "w.dcm")
    assert not list(tmp_path.glob("*.dcm"))


def test_real_ct_dicom_roundtrip(tmp_path, shared_data):
    folder = shared_data / "monai_testing_data" / "dicom" / "CT_DICOM"
    # Irregular slice gaps: reading it needs the explicit opt-in.
    with pytest.raises(InputError, match=r"CT_DICOM.*gaps 202.5, 1.25, 1.25 mm"):
        load(folder)
    src = load(folder, irregular="mean")
    arr = np.zeros(src.shape, np.uint8)
    arr[0, 3:5, 3:5] = 2
    arr[3, 0:2, :] = 1
    with pytest.raises(InputError, match="--allow-irregular-slices"):
        save_dicom_seg(LabelMap.like(src, arr), folder, tmp_path / "ct_seg.dcm")
    seg = LabelMap.like(src, arr)
    out = save_dicom_seg(seg, folder, tmp_path / "ct_seg.dcm", irregular="mean")
    back = load_label(out, reference=folder, irregular="mean")
    assert back.same_geometry(src, atol=1e-6)
    np.testing.assert_array_equal(back.array, arr)
    # Its slices are irregular (gaps 202.5, 1.25, 1.25 mm): without the source it must say so.
    with pytest.raises(InputError, match=r"irregular slice positions.*pass reference="):
        load_label(out)


@pytest.mark.parametrize(
    "name", ["liver.dcm", "liver_1frame.dcm", "liver_expb.dcm", "liver_expb_1frame.dcm"]
)
def test_real_pydicom_seg_files(shared_data, name):
    lab = load_label(shared_data / "pydicom_samples" / "dicom" / name)
    frames = 1 if "1frame" in name else 3
    assert lab.shape == (frames, 512, 512) and lab.labels == [1]
    assert lab.label_names == {1: "Liver"}
    np.testing.assert_allclose(lab.spacing[1:], (0.810547, 0.810547))
    assert int(lab.array.sum()) == (36233 if frames == 1 else 107098)


def test_single_slice_source_file(tmp_path):
    from medseg.data.samples import sample_path

    src = load(sample_path())
    arr = np.zeros(src.shape, np.uint8)
    arr[40:60, 45:70] = 1
    out = save_dicom_seg(LabelMap.like(src, arr), sample_path(), tmp_path / "s.dcm", {1: "canal"})
    back = load_label(out, reference=sample_path())
    assert back.ndim == 2 and back.same_geometry(src)
    np.testing.assert_array_equal(back.array, arr)
    assert back.label_names == {1: "canal"}


def test_source_with_empty_sop_uids_uses_the_file_meta(tmp_path, make_series):
    """Anonymised exports (TotalSegmentator's example series) leave SOPClassUID and
    SOPInstanceUID empty; the file meta header still has them."""
    s = make_series(tmp_path / "src", shape=(3, 6, 5), spacing=(2.0, 0.7, 0.8))
    for f in sorted(s.folder.iterdir()):
        ds = pydicom.dcmread(f)
        ds.SOPClassUID, ds.SOPInstanceUID = "", ""
        ds.save_as(f)
    src = load(s.folder)
    arr = np.zeros(src.shape, np.uint8)
    arr[1, 2:4, 1:3] = 1
    out = save_dicom_seg(LabelMap.like(src, arr), s.folder, tmp_path / "seg.dcm")
    np.testing.assert_array_equal(load_label(out, reference=s.folder).array, arr)
    refs = pydicom.dcmread(out).ReferencedSeriesSequence[0].ReferencedInstanceSequence
    metas = {
        str(pydicom.dcmread(f).file_meta.MediaStorageSOPInstanceUID) for f in s.folder.iterdir()
    }
    assert {str(r.ReferencedSOPInstanceUID) for r in refs} == metas


def test_real_anonymised_ct_series_exports(tmp_path, shared_data):
    folder = shared_data / "totalseg_ref" / "dicom" / "example_ct_dicom"
    src = load(folder)
    arr = np.zeros(src.shape, np.uint8)
    arr[9:11, 200:300, 200:300] = 1
    out = save_dicom_seg(LabelMap.like(src, arr), folder, tmp_path / "seg.dcm")
    np.testing.assert_array_equal(load_label(out, reference=folder).array, arr)
