"""Image sizes read from headers only and checked before decoding (medseg.io.limits)."""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import tifffile
from PIL import Image as PILImage

from medseg.cli.main import main
from medseg.data.samples import sample_path
from medseg.errors import InputError
from medseg.io import load, load_label
from medseg.io.limits import (
    DEFAULT_LIMITS,
    SizeLimits,
    check_shape,
    check_size,
    default_limits,
    header_shape,
    set_default_limits,
)


def bomb_png(path: Path, width: int = 60000, height: int = 60000) -> Path:
    """A tiny PNG whose IHDR claims ``width x height`` 8-bit gray pixels (no real data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    payload = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + payload)
    return path


def header_only_nifti(path: Path, shape: tuple[int, ...], dtype=np.uint8) -> Path:
    """A ``.nii.gz`` holding only a header that claims ``shape`` (x, y, z) - no voxel data."""
    header = nib.Nifti1Header()
    header.set_data_dtype(dtype)
    header.set_data_shape(shape)
    path.write_bytes(gzip.compress(header.binaryblock + b"\0" * 4))
    return path


def test_size_limits_defaults_and_validation() -> None:
    assert SizeLimits(100_000_000, 400_000_000) == DEFAULT_LIMITS
    assert default_limits() is DEFAULT_LIMITS
    for bad in (0, -5, 1.5, True):
        with pytest.raises(InputError, match="max_pixels must be a positive integer"):
            SizeLimits(max_pixels=bad)


def test_check_shape_2d_and_3d() -> None:
    limits = SizeLimits(max_pixels=100, max_voxels=1000)
    check_shape((10, 10), "a.png", limits)
    check_shape((10, 10, 10), "v.nii", limits)
    with pytest.raises(InputError, match=r"a\.png: 2D image of size 10 x 11 \(110 pixels\) is "
                       r"larger than the limit of 100 pixels \(max_pixels\)"):  # fmt: skip
        check_shape((10, 11), "a.png", limits)
    with pytest.raises(InputError, match=r"v\.nii: volume of size 10 x 10 x 11 \(1,100 voxels\)"):
        check_shape((10, 10, 11), "v.nii", limits)
    with pytest.raises(InputError, match="negative size"):
        check_shape((-1, 5), "x.png", limits)


def test_decompression_bomb_png_is_one_clear_error(tmp_path: Path) -> None:
    path = bomb_png(tmp_path / "bomb.png")
    assert path.stat().st_size < 80
    with pytest.raises(InputError, match=r"bomb\.png: image is too large to decode safely"):
        load(path)
    with pytest.raises(InputError, match=r"bomb\.png: image is too large to decode safely"):
        load_label(path)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_png_over_the_pixel_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    path = bomb_png(tmp_path / "big.png", width=12000, height=9000)  # 108 M > 100 M
    assert header_shape(path, "png") == (9000, 12000)
    with pytest.raises(InputError, match=r"9000 x 12000 \(108,000,000 pixels\)"):
        load(path)
    small = tmp_path / "small.png"
    PILImage.fromarray(np.arange(30 * 40, dtype=np.uint16).reshape(30, 40) % 256).convert("L").save(
        small
    )
    assert check_size(small, "png", SizeLimits(max_pixels=1200)) == (30, 40)
    with pytest.raises(InputError, match=r"1,200 pixels\) is larger than the limit of 1,199"):
        load(small, limits=SizeLimits(max_pixels=1199))
    assert load(small, limits=SizeLimits(max_pixels=1200)).shape == (30, 40)


def test_nifti_header_sizes(tmp_path: Path) -> None:
    ct = header_only_nifti(tmp_path / "ct.nii.gz", (512, 512, 600), np.int16)
    assert check_size(ct, "nifti") == (600, 512, 512)  # a 157 M-voxel CT passes
    huge = header_only_nifti(tmp_path / "huge.nii.gz", (1024, 1024, 480))
    assert huge.stat().st_size < 1000
    with pytest.raises(InputError, match=r"huge\.nii\.gz: volume of size 480 x 1024 x 1024 "
                       r"\(503,316,480 voxels\)"):  # fmt: skip
        load(huge)
    timeseries = header_only_nifti(tmp_path / "t.nii.gz", (4, 3, 2, 5))
    with pytest.raises(InputError, match=r"t\.nii\.gz: 4D image of shape \(4, 3, 2, 5\)"):
        load(timeseries, limits=SizeLimits(max_voxels=10**6))


def test_sitk_tiff_npy_dicom_header_shapes(tmp_path: Path) -> None:
    vol = sitk.GetImageFromArray(np.zeros((3, 4, 5), np.int16))
    for ext, fmt in ((".nrrd", "nrrd"), (".mha", "metaimage")):
        sitk.WriteImage(vol, str(tmp_path / f"v{ext}"))
        assert header_shape(tmp_path / f"v{ext}", fmt) == (3, 4, 5)
        with pytest.raises(InputError, match=r"3 x 4 x 5 \(60 voxels\)"):
            load(tmp_path / f"v{ext}", limits=SizeLimits(max_voxels=59))
    tifffile.imwrite(tmp_path / "s.tif", np.zeros((6, 7, 8), np.uint8))
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((7, 8, 3), np.uint8), photometric="rgb")
    assert header_shape(tmp_path / "s.tif", "tiff") == (6, 7, 8)
    assert header_shape(tmp_path / "rgb.tif", "tiff") == (7, 8)
    np.save(tmp_path / "a.npy", np.zeros((9, 10, 3), np.uint8))
    np.save(tmp_path / "b.npy", np.zeros((2, 9, 10), np.float32))
    assert header_shape(tmp_path / "a.npy", "npy") == (9, 10)
    assert header_shape(tmp_path / "b.npy", "npy") == (2, 9, 10)
    np.savez(tmp_path / "c.npz", image=np.zeros((4, 5)), spacing=np.ones(2))
    assert header_shape(tmp_path / "c.npz", "npz") == (4, 5)
    assert header_shape(sample_path(), "dicom") == (128, 128)
    with pytest.raises(InputError, match=r"128 x 128 \(16,384 pixels\)"):
        load(sample_path(), limits=SizeLimits(max_pixels=16383))


def test_dicom_series_is_checked_from_headers(tmp_path: Path, make_series) -> None:
    folder = tmp_path / "series"
    make_series(folder, shape=(4, 6, 5))
    assert load(folder, limits=SizeLimits(max_voxels=120)).shape == (4, 6, 5)
    with pytest.raises(InputError, match=r"series .*: volume of size 4 x 6 x 5 \(120 voxels\)"):
        load(folder, limits=SizeLimits(max_voxels=119))


def test_corrupt_headers_are_input_errors(tmp_path: Path) -> None:
    for name, fmt in (("x.png", "png"), ("x.tif", "tiff"), ("x.nii.gz", "nifti"),
                      ("x.nrrd", "nrrd"), ("x.npy", "npy")):  # fmt: skip
        path = tmp_path / name
        path.write_bytes(b"\x00garbage" * 8)
        with pytest.raises(InputError, match=re.escape(name) + ": cannot read"):
            check_size(path, fmt)


def test_process_default_can_be_changed(tmp_path: Path) -> None:
    small = tmp_path / "s.npy"
    np.save(small, np.zeros((10, 10), np.uint8))
    try:
        set_default_limits(SizeLimits(max_pixels=99))
        with pytest.raises(InputError, match=r"100 pixels\) is larger than the limit of 99"):
            load(small)
    finally:
        set_default_limits(DEFAULT_LIMITS)
    assert load(small).shape == (10, 10)
    with pytest.raises(InputError, match="limits must be a SizeLimits"):
        set_default_limits(99)  # type: ignore[arg-type]


def test_cli_prints_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = bomb_png(tmp_path / "bomb.png")
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("medseg info: error: ")
    assert "too large to decode safely" in err[0] and "Traceback" not in err[0]


@pytest.mark.parametrize(("width", "height"), [(10000, 9500), (12000, 12000), (13000, 13500)])
def test_pillow_bomb_warning_is_silenced(
    tmp_path: Path, recwarn: pytest.WarningsRecorder, width: int, height: int
) -> None:
    """89-178 M pixels: Pillow would warn; medseg's own limit (100 M pixels) decides."""
    path = bomb_png(tmp_path / "big.png", width, height)
    if width * height <= DEFAULT_LIMITS.max_pixels:
        assert check_size(path, "png") == (height, width)
    else:
        with pytest.raises(InputError, match=r"big\.png: 2D image of size .* is larger than"):
            check_size(path, "png")
    assert [str(w.message) for w in recwarn] == []


def test_decode_emits_no_bomb_warning(
    tmp_path: Path, recwarn: pytest.WarningsRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The full decode (medseg.io.raster) is silent too: a 20 x 20 PNG over a lowered
    Pillow threshold of 300 pixels (would warn) but under 2 x 300 (would raise)."""
    PILImage.fromarray(np.full((20, 20), 7, np.uint8)).save(tmp_path / "s.png")
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 300)
    with pytest.warns(PILImage.DecompressionBombWarning):  # Pillow alone warns
        PILImage.open(tmp_path / "s.png").close()
    recwarn.clear()
    assert load(tmp_path / "s.png").array.sum() == 7 * 400
    assert [str(w.message) for w in recwarn] == []
