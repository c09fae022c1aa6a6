"""DICOM series folders, single files and multi-frame files."""

from __future__ import annotations

import logging

import numpy as np
import pydicom
import pytest

from medseg.errors import InputError
from medseg.io import list_dicom_series, load, save

CT_DICOM = "monai_testing_data/dicom/CT_DICOM"


def _expected_geometry(files):
    """Spacing/origin/direction computed directly from the pydicom tags, slice order too."""
    dss = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    iop = np.array([float(v) for v in dss[0].ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    pos = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in dss])
    order = np.argsort(pos @ normal)
    dist = (pos @ normal)[order]
    sy, sx = (float(v) for v in dss[0].PixelSpacing)
    sz = (dist[-1] - dist[0]) / (len(dss) - 1)
    direction = np.stack([iop[:3], iop[3:], normal], axis=1)
    return order, (sz, sy, sx), tuple(pos[order[0]]), direction


def test_two_series_in_one_folder(tmp_path, make_series, caplog):
    big = make_series(tmp_path / "mixed", shape=(5, 6, 5), series_uid="1.2.3.4.100", seed=1)
    small = make_series(tmp_path / "mixed", shape=(3, 4, 4), series_uid="1.2.3.4.200", seed=2,
                        modality="MR", description="other")  # fmt: skip
    (tmp_path / "mixed" / "README.txt").write_text("not dicom")
    series = list_dicom_series(tmp_path / "mixed")
    assert [s.series_uid for s in series] == ["1.2.3.4.100", "1.2.3.4.200"]
    assert [(s.modality, s.num_files, s.num_slices, s.shape) for s in series] == [
        ("CT", 5, 5, (5, 6, 5)),
        ("MR", 3, 3, (3, 4, 4)),
    ]
    assert series[1].description == "other" and series[0].size_bytes > series[1].size_bytes
    with caplog.at_level(logging.INFO, logger="medseg"):
        img = load(tmp_path / "mixed")
    assert (
        "2 series; reading the largest image series, 1.2.3.4.100" in caplog.text
        and "1 other" in caplog.text
    )
    assert img.shape == (5, 6, 5) and img.meta["series_count"] == 2
    np.testing.assert_array_equal(img.array, big.hu)
    other = load(tmp_path / "mixed", series_uid="1.2.3.4.200")
    assert other.modality == "MR" and other.meta["series_uid"] == "1.2.3.4.200"
    np.testing.assert_array_equal(other.array, small.hu)
    with pytest.raises(InputError, match=r"mixed: no series 9\.9; the folder has: 1\.2\.3\.4\.100"):
        load(tmp_path / "mixed", series_uid="9.9")


def test_series_geometry_matches_tags_and_survives_nifti(tmp_path, make_series):
    s = make_series(tmp_path / "cor", shape=(4, 6, 5), spacing=(2.5, 0.7, 0.8))
    img = load(s.folder)
    _, spacing, origin, direction = _expected_geometry(sorted(s.folder.iterdir()))
    np.testing.assert_allclose(img.spacing, spacing, atol=1e-6)
    np.testing.assert_allclose(img.spacing, (2.5, 0.7, 0.8), atol=1e-6)
    np.testing.assert_allclose(img.origin, origin, atol=1e-4)
    np.testing.assert_allclose(img.direction, direction, atol=1e-6)
    # IOP rows +x, columns -z: x index -> L (+x), y index -> I (-z), slices -> P (+y)
    assert img.orientation == "LIP" and img.nibabel_orientation == "LIP"
    assert img.modality == "CT" and img.array.dtype == np.int16
    np.testing.assert_array_equal(img.array, s.hu)  # HU (rescale applied), in slice order
    assert img.meta["uniform_spacing"] is True
    assert img.meta["sop_instance_uids"] == [
        str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in s.files
    ]
    nii = load(save(img, tmp_path / "cor.nii.gz"))
    assert nii.same_geometry(img, atol=1e-4)
    np.testing.assert_array_equal(nii.array, img.array)
    import nibabel as nib

    assert "".join(nib.aff2axcodes(nib.load(tmp_path / "cor.nii.gz").affine)) == "LIP"


def test_single_extensionless_file_and_empty_folder(tmp_path, make_series):
    s = make_series(tmp_path / "one", shape=(2, 3, 4))
    img = load(s.files[0])
    assert img.ndim == 2 and img.shape == (3, 4) and img.meta["format"] == "dicom"
    np.testing.assert_array_equal(img.array, s.hu[0])
    np.testing.assert_allclose(img.spacing, (0.7, 0.8))
    assert img.meta["image_position_patient"] == pytest.approx(list(s.origin))
    with pytest.raises(InputError, match="belongs to series"):
        load(s.files[0], series_uid="1.2.3")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: no DICOM files found"):
        load(tmp_path / "empty")


def test_sample_ct_single_file_in_hu():
    from medseg.data.samples import sample_ct, sample_path

    img = load(sample_path())
    ref = sample_ct()
    np.testing.assert_array_equal(img.array, ref.array)
    assert img.spacing == ref.spacing and img.modality == "CT"


def test_missing_decoder_names_transfer_syntax(tmp_path):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import HTJ2KLossless, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = HTJ2KLossless
    ds = FileDataset(str(tmp_path / "h.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.SeriesInstanceUID, ds.Modality = generate_uid(), "OT"
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 30])
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "h.dcm", enforce_file_format=True)
    with pytest.raises(InputError, match=r"h\.dcm: cannot decode pixel data with transfer syntax "
                       r"High-Throughput JPEG 2000.*pip install"):  # fmt: skip
        load(tmp_path / "h.dcm")


def test_jpeg_lossless_without_pydicom_decoder_uses_gdcm(tmp_path):
    import SimpleITK as sitk

    arr = (np.arange(64, dtype=np.int16).reshape(1, 8, 8) * 10) - 300
    writer = sitk.ImageFileWriter()
    writer.SetFileName(str(tmp_path / "j.dcm"))
    writer.SetImageIO("GDCMImageIO")
    writer.UseCompressionOn()
    writer.SetCompressor("JPEG")  # JPEG Lossless, Process 14 SV1
    writer.Execute(sitk.GetImageFromArray(arr))
    ts = pydicom.dcmread(tmp_path / "j.dcm", stop_before_pixels=True).file_meta.TransferSyntaxUID
    assert ts == pydicom.uid.JPEGLosslessSV1
    img = load(tmp_path / "j.dcm")
    assert img.shape == (8, 8) and img.array.dtype == np.int16
    np.testing.assert_array_equal(img.array, arr[0])


def test_real_ct_dicom_series(shared_data):
    folder = shared_data / CT_DICOM
    (info,) = list_dicom_series(folder)
    assert (info.modality, info.num_files, info.shape) == ("CT", 4, (4, 16, 16))
    img = load(folder, irregular="mean")
    files = sorted(folder.iterdir())
    order, spacing, origin, direction = _expected_geometry(files)
    np.testing.assert_allclose(img.spacing, spacing, atol=1e-6)
    np.testing.assert_allclose(img.spacing, ((105.519997 + 99.480003) / 3, 0.488281, 0.488281))
    np.testing.assert_allclose(img.origin, origin, atol=1e-6)
    np.testing.assert_allclose(img.direction, direction, atol=1e-6)
    assert img.orientation == "LPS" and img.nibabel_orientation == "LPS"
    for k, i in enumerate(order):
        ds = pydicom.dcmread(files[i])
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_array_equal(img.array[k], hu)
    assert img.meta["uniform_spacing"] is False
    np.testing.assert_allclose(img.meta["slice_gaps"], [202.5, 1.25, 1.25], atol=1e-4)
    z = [float(pydicom.dcmread(files[i]).ImagePositionPatient[2]) for i in order]
    np.testing.assert_allclose(np.asarray(img.meta["slice_positions"])[:, 2], z, atol=1e-6)


def test_real_multiframe_files(shared_data):
    root = shared_data / "pydicom_samples" / "dicom"
    seg = load(root / "liver.dcm")
    assert seg.shape == (3, 512, 512) and seg.modality == "SEG"
    np.testing.assert_allclose(seg.spacing, (1.0, 0.810547, 0.810547), atol=1e-6)
    cine = load(root / "examples_ybr_color.dcm")
    assert cine.array.shape == (30, 240, 320, 3) and cine.channels
    assert cine.meta["frame_axis"] == "frame"
    cr = load(root / "RG3_UNCR.dcm")
    raw = pydicom.dcmread(root / "RG3_UNCR.dcm").pixel_array
    assert cr.meta["inverted_monochrome1"]
    np.testing.assert_array_equal(cr.array, (2 ** int(pydicom.dcmread(
        root / "RG3_UNCR.dcm", stop_before_pixels=True).BitsStored) - 1) - raw)  # fmt: skip
