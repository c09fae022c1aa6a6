"""Round trips through every writable format keep values, dtype and geometry."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.io import Image, LabelMap, load, load_label, save


def _rotation() -> np.ndarray:
    """A proper rotation (det +1) that is not a permutation: 30 degrees about z, then flip."""
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    flip = np.diag([1.0, -1.0, -1.0])
    return rz @ flip


@pytest.fixture
def volume() -> Image:
    arr = (np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) * 7 - 300).astype(np.int16)
    return Image(
        array=arr,
        spacing=(3.5, 0.75, 1.25),
        origin=(-12.5, 40.25, 7.0),
        direction=_rotation(),
        modality="CT",
    )


def _assert_same(a: Image, b: Image, atol: float = 1e-5) -> None:
    assert a.array.dtype == b.array.dtype
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.spacing, b.spacing, atol=atol)
    np.testing.assert_allclose(a.origin, b.origin, atol=atol)
    np.testing.assert_allclose(a.direction, b.direction, atol=atol)


@pytest.mark.parametrize(
    "chain",
    [
        (".nii.gz", ".nrrd", ".mha", ".nii"),
        (".mha", ".nhdr", ".mhd", ".nii.gz"),
        (".nrrd", ".npz", ".nii.gz"),
    ],
)
def test_volume_chain_keeps_values_and_geometry(tmp_path, volume, chain):
    current = volume
    for i, ext in enumerate(chain):
        path = save(current, tmp_path / f"step{i}{ext}")
        current = load(path)
        _assert_same(volume, current)
        assert current.meta["path"] == str(path)
    # The direction really is the rotation (not identity): orientation letters follow it.
    assert current.orientation == volume.orientation != "LPS"


def test_float_and_uint8_volumes_keep_dtype(tmp_path):
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float64, np.uint8, np.uint16, np.int32):
        arr = (rng.random((3, 4, 5)) * 200).astype(dtype)
        img = Image(arr, spacing=(2.0, 0.5, 0.5))
        for ext in (".nii.gz", ".nrrd", ".mha"):
            back = load(save(img, tmp_path / f"v_{np.dtype(dtype).name}{ext}"))
            assert back.array.dtype == dtype, (ext, dtype)
            np.testing.assert_array_equal(back.array, arr)


def test_detached_headers_write_both_files(tmp_path, volume):
    save(volume, tmp_path / "a.nhdr")
    save(volume, tmp_path / "b.mhd")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "a.nhdr" in names and "b.mhd" in names
    assert any(n.startswith("a.") and n != "a.nhdr" for n in names)  # NRRD data file
    assert any(n.startswith("b.") and n != "b.mhd" for n in names)  # MetaImage raw file
    assert not [n for n in names if n.startswith(".")]  # no temporary leftovers


def test_2d_nifti_stays_2d_and_single_slice_3d_stays_3d(tmp_path):
    flat = Image(np.arange(12, dtype=np.int16).reshape(3, 4), spacing=(0.5, 0.25), origin=(1, 2))
    back = load(save(flat, tmp_path / "flat.nii.gz"))
    assert back.ndim == 2 and back.shape == (3, 4)
    np.testing.assert_allclose(back.spacing, (0.5, 0.25))
    slab = Image(np.arange(12, dtype=np.int16).reshape(1, 3, 4), spacing=(5.0, 0.5, 0.25))
    back = load(save(slab, tmp_path / "slab.nii.gz"))
    assert back.ndim == 3 and back.shape == (1, 3, 4)
    np.testing.assert_allclose(back.spacing, (5.0, 0.5, 0.25))


def test_png_8bit_16bit_rgb(tmp_path):
    gray8 = np.array([[0, 1, 2], [253, 254, 255]], dtype=np.uint8)
    gray16 = np.array([[0, 1000, 65535], [7, 8, 9]], dtype=np.uint16)
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    for name, arr in (("g8", gray8), ("g16", gray16)):
        back = load(save(arr, tmp_path / f"{name}.png"))
        assert back.array.dtype == arr.dtype and not back.channels and back.modality == "unknown"
        np.testing.assert_array_equal(back.array, arr)
    back = load(save(Image(rgb, channels=True), tmp_path / "rgb.png"))
    assert back.channels and back.modality == "RGB" and back.shape == (2, 3)
    np.testing.assert_array_equal(back.array, rgb)


def test_rgba_png_loads_as_rgb(tmp_path):
    from PIL import Image as PILImage

    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 17
    PILImage.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    img = load(tmp_path / "a.png")
    assert img.array.shape == (2, 2, 3) and img.channels
    np.testing.assert_array_equal(img.array[..., 0], 200)
    np.testing.assert_array_equal(img.array[..., 1:], 0)


def test_palette_png_gives_indices_as_labels_and_rgb_as_image(tmp_path):
    from PIL import Image as PILImage

    idx = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    pil = PILImage.fromarray(idx, mode="P")
    pil.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    pil.save(tmp_path / "p.png")
    np.testing.assert_array_equal(load_label(tmp_path / "p.png").array, idx)
    img = load(tmp_path / "p.png")
    assert img.channels
    np.testing.assert_array_equal(img.array[1, 0], [0, 255, 0])


def test_tiff_2d_3d_float(tmp_path):
    stack = np.linspace(-1, 1, 2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    back = load(save(stack, tmp_path / "s.tif"))
    assert back.ndim == 3 and back.array.dtype == np.float32
    np.testing.assert_array_equal(back.array, stack)
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    back = load(save(Image(rgb, channels=True), tmp_path / "rgb.tiff"))
    assert back.channels and back.shape == (2, 3)
    np.testing.assert_array_equal(back.array, rgb)


def test_npy_and_npz(tmp_path, volume):
    back = load(save(volume.array, tmp_path / "v.npy"))
    np.testing.assert_array_equal(back.array, volume.array)
    assert back.spacing == (1.0, 1.0, 1.0)
    labels = LabelMap(
        np.array([[0, 1], [2, 2]], dtype=np.uint8), spacing=(0.3, 0.6), label_names={1: "a", 2: "b"}
    )
    lab = load_label(save(labels, tmp_path / "l.npz"))
    np.testing.assert_array_equal(lab.array, labels.array)
    assert lab.spacing == (0.3, 0.6) and lab.label_names == {1: "a", 2: "b"}
    # A foreign npz with one array under any key.
    np.savez(tmp_path / "other.npz", data=np.ones((3, 3), dtype=np.float32))
    assert load(tmp_path / "other.npz").shape == (3, 3)


def test_label_roundtrip_nifti_keeps_uint8(tmp_path):
    lab = LabelMap(np.array([[[0, 1, 7]]], dtype=np.uint8), spacing=(2, 1, 1))
    back = load_label(save(lab, tmp_path / "l.nii.gz"))
    assert isinstance(back, LabelMap) and back.array.dtype == np.uint8 and back.labels == [1, 7]


def test_float_labels_with_integer_values_are_accepted(tmp_path):
    save(np.array([[0.0, 2.0], [1.0, 0.0]], dtype=np.float32), tmp_path / "f.nii.gz")
    lab = load_label(tmp_path / "f.nii.gz")
    assert lab.array.dtype == np.uint8 and lab.labels == [1, 2]
