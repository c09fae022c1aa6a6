"""Inputs found by ``benchmarks/fuzz_readers.py`` that crashed a reader, kept as regressions.

Each case is a small valid file written here and edited the way the fuzzer's mutant was
(the edits are spelled out instead of shipping binary files). Every one must now raise
``InputError`` from ``medseg.io.load`` (and from the header check where the header is at
fault), never a library exception, segfault or hang.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.errors import InputError
from medseg.io import load, save
from medseg.io.limits import check_size

VOLUME = np.arange(3 * 8 * 10, dtype=np.int16).reshape(3, 8, 10)


def _edited(path: Path, old: bytes, new: bytes) -> Path:
    data = path.read_bytes()
    assert data.count(old) >= 1, f"{old!r} not in the seed file"
    path.write_bytes(data.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (b"NDims = 3", b"NDims = -1", "NDims '-1'"),  # was: SIGSEGV in MetaIO
        (b"NDims = 3", b"NDims = 65535", "NDims '65535'"),  # was: SIGABRT in MetaIO
        (b"TransformMatrix = 1 0 0 0 1 0 0 0 1", b"TransformMatrix = 1 0 0 0 1 0 0 1e308 1",
         "direction"),  # was: ITK hung in ReadImage
        (b"= LOCAL", b"= LO\0AL", "NUL byte"),  # was: ValueError: embedded null byte
    ],
)  # fmt: skip
def test_metaimage_headers_itk_cannot_take(
    tmp_path: Path, old: bytes, new: bytes, message: str
) -> None:
    path = _edited(save(VOLUME, tmp_path / "v.mha"), old, new)
    with pytest.raises(InputError, match=message):
        check_size(path, "metaimage")
    with pytest.raises(InputError, match=message):
        load(path)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"(3, 8, 10)", b"(3, 8, 10"),  # was: tokenize.TokenError (EOF in multi-line)
        (b"'shape'", b",      "),  # was: SyntaxError from ast.literal_eval
    ],
)
def test_npy_headers_that_do_not_parse(tmp_path: Path, old: bytes, new: bytes) -> None:
    path = tmp_path / "a.npy"
    np.save(path, VOLUME)
    _edited(path, old, new)
    with pytest.raises(InputError, match="NPY header"):
        check_size(path, "npy")
    with pytest.raises(InputError):
        load(path)


def _dicom(path: Path) -> Path:
    """One CT slice with pydicom (Rescale intercept -1024, pixel spacing 0.7 x 0.8)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Rows, ds.Columns = "CT", 8, 10
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = "1", "-1024"
    ds.PixelSpacing = ["0.7", "0.8"]
    ds.PixelData = VOLUME[0].tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"-1024", b"%1024"),  # was: ValueError converting RescaleIntercept
        (b"0.7\\0.8", b"0,7\\0.8"),  # was: ValueError converting PixelSpacing
        (b"DS", b"\x55\xc9"),  # was: NotImplementedError: unknown VR
    ],
)
def test_dicom_values_that_do_not_parse(tmp_path: Path, old: bytes, new: bytes) -> None:
    path = _edited(_dicom(tmp_path / "ct.dcm"), old, new)
    with pytest.raises(InputError):
        load(path)


def test_unedited_seeds_load(tmp_path: Path) -> None:
    """The unedited seeds are valid (so the cases above test the edit, not the seed)."""
    assert load(_dicom(tmp_path / "ct.dcm")).array.shape == (8, 10)
    assert load(save(VOLUME, tmp_path / "v.mha")).array.shape == (3, 8, 10)


def test_tiff_with_any_corrupt_header_byte(tmp_path: Path) -> None:
    """Every byte of the TIFF header and first IFD set to 0x00 or 0xFF, and every
    truncation there: the file loads or raises InputError (the fuzzer found TypeError,
    ZeroDivisionError, RuntimeError, AssertionError and struct.error/zlib.error here)."""
    seed = save(VOLUME, tmp_path / "seed.tif").read_bytes()
    path = tmp_path / "case.tif"
    cases = [seed[:n] for n in range(0, 200, 3)]
    for i in range(min(len(seed), 200)):
        cases += [seed[:i] + bytes([v]) + seed[i + 1 :] for v in (0x00, 0xFF)]
    refused = 0
    for data in cases:
        path.write_bytes(data)
        try:
            check_size(path, "tiff")
            load(path)
        except InputError:
            refused += 1
    assert refused >= len(cases) // 4  # most edits break the file; none escapes as another error
