"""Bad input raises InputError naming the file and the problem; failed saves leave no file."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from medseg.errors import InputError
from medseg.io import Image, LabelMap, load, load_label, save


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.nii\.gz: no such file"):
        load(tmp_path / "nope.nii.gz")


def test_empty_file(tmp_path):
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"e\.png: file is empty"):
        load(tmp_path / "e.png")


def test_unknown_extension(tmp_path):
    (tmp_path / "x.xyz").write_text("hello")
    with pytest.raises(InputError, match=r"x\.xyz: unknown file type '\.xyz'"):
        load(tmp_path / "x.xyz")
    with pytest.raises(InputError, match=r"out\.xyz: cannot write \.xyz"):
        save(np.zeros((2, 2)), tmp_path / "out.xyz")


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("g.nii.gz", gzip.compress(b"garbage" * 50)),
        ("r.nii.gz", b"\x1f\x8b not really gzip at all" * 10),
        ("t.nrrd", b"NRRD0004\ntype: short\ndimension: 3\nsizes: 9 9 9\nencoding: raw\n\n123"),
        ("m.mha", b"ObjectType = Image\nNDims = 3\nDimSize = 9 9 9\n"),
        ("n.npy", b"\x93NUMPY garbage"),
        ("z.npz", b"PK\x03\x04 truncated zip"),
        ("c.dcm", b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x40\x00"),
        ("j.jpg", b"\xff\xd8\xff\xe0 not a jpeg"),
        ("t.tif", b"II*\x00\x08\x00\x00\x00\xff\xff"),
    ],
)
def test_corrupt_files(tmp_path, name, payload):
    (tmp_path / name).write_bytes(payload)
    with pytest.raises(InputError, match=rf"{name.replace('.', '[.]')}: "):
        load(tmp_path / name)


def test_truncated_png(tmp_path):
    save(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64), tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.png: cannot read image"):
        load(tmp_path / "cut.png")


def test_4d_nifti_is_rejected(tmp_path):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((5, 4, 3, 2), np.float32), np.eye(4)), tmp_path / "t.nii")
    with pytest.raises(InputError, match=r"t\.nii: 4D image of shape \(5, 4, 3, 2\)"):
        load(tmp_path / "t.nii")
    # A trailing time axis of length 1 is dropped: (x, y, z, 1) -> (Z, Y, X).
    nib.save(nib.Nifti1Image(np.ones((5, 4, 3, 1), np.int16), np.eye(4)), tmp_path / "o.nii.gz")
    assert load(tmp_path / "o.nii.gz").shape == (3, 4, 5)
    # NRRD/MHA 4D images (SimpleITK) are refused the same way.
    import SimpleITK as sitk

    img4 = sitk.JoinSeries([sitk.Image([5, 4, 3], sitk.sitkInt16)] * 2)
    sitk.WriteImage(img4, tmp_path / "t.mha")
    with pytest.raises(InputError, match=r"t\.mha: 4D image of size \(5, 4, 3, 2\)"):
        load(tmp_path / "t.mha")


def test_4d_npy_is_rejected(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 3, 4, 5)))
    with pytest.raises(InputError, match=r"a\.npy: array of shape \(2, 3, 4, 5\).*4D"):
        load(tmp_path / "a.npy")


def test_nan_inf_and_fractional_labels(tmp_path):
    for name, value, problem in (
        ("nan", np.nan, "NaN or inf"),
        ("inf", np.inf, "NaN or inf"),
        ("frac", 1.5, "non-integer"),
        ("neg", -2.0, "out of range"),
    ):
        arr = np.zeros((2, 3, 3), np.float32)
        arr[1, 1, 1] = value
        path = save(arr, tmp_path / f"{name}.nii.gz")
        with pytest.raises(
            InputError,
            match=rf"{name}\.nii\.gz: label map contains {problem}"
            if problem != "out of range"
            else rf"{name}\.nii\.gz: label values out",
        ):
            load_label(path)


def test_colour_label_png_is_rejected(tmp_path):
    rgb = np.zeros((3, 3, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    save(rgb, tmp_path / "c.png")
    with pytest.raises(InputError, match=r"c\.png: label image has 3 different colour channels"):
        load_label(tmp_path / "c.png")
    gray_as_rgb = np.repeat(np.array([[0, 1], [2, 0]], np.uint8)[..., None], 3, axis=-1)
    save(gray_as_rgb, tmp_path / "g.png")
    assert load_label(tmp_path / "g.png").labels == [1, 2]


def test_png_refuses_3d_and_lossy_values(tmp_path):
    with pytest.raises(InputError, match=r"v\.png: PNG holds one 2D image but got a 3D volume"):
        save(np.zeros((2, 3, 5), np.uint8), tmp_path / "v.png")
    with pytest.raises(InputError, match=r"h\.png: PNG stores uint8/uint16.*-1000\.\.3"):
        save(np.array([[-1000, 3]], np.int16), tmp_path / "h.png")
    with pytest.raises(InputError, match=r"f\.png: .*float32"):
        save(np.array([[0.5, 3]], np.float32), tmp_path / "f.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    # Integer values that fit are cast losslessly.
    back = load(save(np.array([[0, 300]], np.int32), tmp_path / "ok.png"))
    assert back.array.dtype == np.uint16 and back.array.tolist() == [[0, 300]]


def test_failed_save_does_not_clobber_existing_file(tmp_path):
    target = tmp_path / "keep.png"
    save(np.full((2, 2), 9, np.uint8), target)
    before = target.read_bytes()
    with pytest.raises(InputError):
        save(np.zeros((2, 2, 2), np.float32), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]


def test_save_rejects_non_arrays_and_folders(tmp_path):
    with pytest.raises(InputError, match="needs an Image, LabelMap or numpy array"):
        save([[1, 2]], tmp_path / "a.npy")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="is a folder"):
        save(np.zeros((2, 2)), tmp_path)


def test_labelmap_direct_validation_messages():
    with pytest.raises(InputError, match="NaN or inf"):
        LabelMap(np.array([[np.nan, 0]]))
    with pytest.raises(InputError, match="2D or 3D"):
        Image(np.zeros((2, 2, 2, 2)))
