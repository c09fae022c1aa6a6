"""``medseg info`` and ``medseg convert``, run in-process through ``main``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from synthetic_dicom import write_series  # tests/_support (pytest's pythonpath)

from medseg.cli.main import main
from medseg.io import Image, LabelMap, load, load_label, save


@pytest.fixture
def volume(tmp_path) -> Path:
    arr = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4) - 5
    direction = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    img = Image(arr, spacing=(4.0, 0.5, 0.25), origin=(1, 2, 3), direction=direction)
    return save(img, tmp_path / "v.nii.gz")


def test_info_text(volume, capsys):
    assert main(["info", str(volume)]) == 0
    out = capsys.readouterr().out
    assert "shape:       (2, 3, 4)  axes ZYX" in out
    assert "spacing:     (4, 0.5, 0.25) mm, array order" in out
    # direction columns: x index -> +y (P), y index -> +z (S), z index -> +x (L)
    assert "orientation: PSL  (ITK/DICOM, LPS world)" in out
    assert "PSL  (nibabel aff2axcodes, RAS world)" in out
    assert "dtype:       int16" in out and "range:       -5 .. 18" in out
    assert "modality:    unknown" in out


def test_info_json_dicom_folder_lists_series(tmp_path, capsys):
    write_series(tmp_path / "d", shape=(3, 4, 5), series_uid="1.2.3.1")
    write_series(tmp_path / "d", shape=(2, 4, 5), series_uid="1.2.3.2", modality="MR")
    assert main(["info", str(tmp_path / "d"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["series_uid"] == "1.2.3.1" and info["shape"] == [3, 4, 5]
    assert [s["series_uid"] for s in info["series"]] == ["1.2.3.1", "1.2.3.2"]
    assert info["orientation_itk_lps"] == "LIP" == info["orientation_nibabel_ras"]
    assert main(["info", str(tmp_path / "d"), "--series", "1.2.3.2"]) == 0
    out = capsys.readouterr().out
    assert "modality:        MR" in out and " * 1.2.3.2  MR" in out and "   1.2.3.1  CT" in out


def test_info_label(tmp_path, capsys):
    lab = LabelMap(np.array([[0, 2], [5, 0]], np.uint8), label_names={2: "a", 5: "b"})
    save(lab, tmp_path / "l.npz")
    assert main(["info", str(tmp_path / "l.npz"), "--label"]) == 0
    assert "labels:      2=a, 5=b" in capsys.readouterr().out


def test_convert_chain_keeps_data(volume, tmp_path, capsys):
    src = load(volume)
    current = volume
    for ext in (".nrrd", ".mha", ".npz", ".nii"):
        out = tmp_path / f"c{ext}"
        assert main(["convert", str(current), str(out)]) == 0
        back = load(out)
        assert back.same_geometry(src) and back.array.dtype == np.int16
        np.testing.assert_array_equal(back.array, src.array)
        current = out
    assert main(["convert", str(volume), str(tmp_path / "c.tif")]) == 0
    np.testing.assert_array_equal(load(tmp_path / "c.tif").array, src.array)
    assert "wrote" in capsys.readouterr().out


def test_convert_dicom_series_to_nifti(tmp_path):
    s = write_series(tmp_path / "d", shape=(3, 4, 5))
    assert main(["convert", str(s.folder), str(tmp_path / "ct.nii.gz")]) == 0
    nii, dcm = load(tmp_path / "ct.nii.gz"), load(s.folder)
    assert nii.same_geometry(dcm, atol=1e-4)
    np.testing.assert_array_equal(nii.array, s.hu)


def test_convert_errors_exit_2_with_one_line(volume, tmp_path, capsys):
    assert main(["convert", str(volume), str(tmp_path / "v.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("medseg convert: error: ") and "PNG holds one 2D image" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "v.png").exists()
    assert main(["convert", str(tmp_path / "missing.nii"), str(tmp_path / "o.nii")]) == 2
    assert "missing.nii: no such file" in capsys.readouterr().err
    save(np.array([[0.0, 0.5]], np.float32), tmp_path / "frac.nii.gz")
    assert main(["convert", str(tmp_path / "frac.nii.gz"), str(tmp_path / "o.nii"), "--label"]) == 2
    assert "frac.nii.gz: label map contains non-integer values" in capsys.readouterr().err
    assert main(["convert", str(volume), str(tmp_path / "o.dcm")]) == 2
    assert "use --label --source" in capsys.readouterr().err


def test_convert_display_and_label(tmp_path):
    from medseg.data.samples import sample_path

    assert main(["convert", str(sample_path()), str(tmp_path / "ct.png"), "--display"]) == 0
    png = load(tmp_path / "ct.png")
    assert png.array.dtype == np.uint8 and png.shape == (128, 128)
    hu = load(sample_path()).array
    expected = (np.clip((hu - (40 - 200)) / 400, 0, 1) * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(png.array, expected)
    lab = np.array([[0, 3], [1, 1]], np.uint8)
    save(lab, tmp_path / "l.png")
    assert main(["convert", str(tmp_path / "l.png"), str(tmp_path / "l.nii.gz"), "--label"]) == 0
    back = load_label(tmp_path / "l.nii.gz")
    assert back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, lab)


def test_convert_label_to_dicom_seg(tmp_path):
    s = write_series(tmp_path / "d", shape=(3, 4, 5))
    src = load(s.folder)
    arr = np.zeros(src.shape, np.uint8)
    arr[1, 1:3, 2:4] = 2
    save(LabelMap.like(src, arr), tmp_path / "l.nii.gz")
    args = ["convert", str(tmp_path / "l.nii.gz"), str(tmp_path / "seg.dcm"), "--label"]
    assert main([*args, "--source", str(s.folder)]) == 0
    np.testing.assert_array_equal(load_label(tmp_path / "seg.dcm").array, arr)


def test_info_and_convert_on_every_shared_file_type(shared_data, tmp_path, capsys):
    inputs = [
        ("isbi2012_em/images/train_00.png", False),
        ("miccai15_nuclei/images/image01.png", False),
        ("miccai15_nuclei/labels/image01.png", True),
        ("monai_testing_data/images/anatomical.nii.gz", False),
        ("monai_testing_data/labels/anatomical.nii.gz", True),
        ("monai_testing_data/dicom/CT_DICOM", False),
        ("pydicom_samples/dicom/CT_small.dcm", False),
        ("pydicom_samples/dicom/US1_UNCR.dcm", False),
        ("pydicom_samples/dicom/emri_small.dcm", False),
        ("pydicom_samples/dicom/examples_ybr_color.dcm", False),
        ("pydicom_samples/dicom/liver_expb.dcm", True),
    ]
    for i, (rel, label) in enumerate(inputs):
        flag = ["--label"] if label else []
        if rel.endswith("CT_DICOM"):  # slice gaps 202.5, 1.25, 1.25 mm: needs the opt-in
            assert main(["info", str(shared_data / rel)]) == 2
            flag.append("--allow-irregular-slices")
        assert main(["info", str(shared_data / rel), "--json", *flag]) == 0, rel
        info = json.loads(capsys.readouterr().out)
        ext = ".npz" if info["channels"] > 1 and info["spatial_dims"] == 3 else ".nrrd"
        out = tmp_path / f"o{i}{ext}"
        assert main(["convert", str(shared_data / rel), str(out), *flag]) == 0, rel
        assert capsys.readouterr().out.startswith(f"wrote {out}")
        back = load_label(out) if label else load(out)
        assert list(back.array.shape) == info["shape"], rel
        if info["spatial_dims"] == 2:
            assert main(["convert", str(shared_data / rel), str(tmp_path / f"o{i}.png"), *flag,
                         *([] if label else ["--display"])]) == 0  # fmt: skip
            capsys.readouterr()
