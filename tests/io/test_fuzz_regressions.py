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
from synthetic_dicom import ct_dataset  # tests/_support

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
    ds = ct_dataset(path)
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


FUZZ_CASES = Path(__file__).parent / "fuzz_cases"


def test_metaimage_data_file_key_without_value(tmp_path: Path) -> None:
    """The fuzzer's mutant (kept as it was found, 605 bytes): ``ElementDataFile`` followed
    by binary bytes instead of ``= LOCAL``. ITK's ReadImageInformation accepted it and the
    ReadImage after it aborted the process (SIGABRT; SIGSEGV here); both are now refused
    before ITK opens the file."""
    path = tmp_path / "case.mha"
    path.write_bytes((FUZZ_CASES / "mha_elementdatafile_binary.mha").read_bytes())
    for call in (lambda: check_size(path, "metaimage"), lambda: load(path)):
        with pytest.raises(InputError, match=r"ElementDataFile has no '= value'"):
            call()


def test_metaimage_data_file_key_needs_a_value(tmp_path: Path) -> None:
    for new in (b"\0\0\0\0\x7f\xff\xff\xff", b" =   \n"):
        path = _edited(save(VOLUME, tmp_path / "v.mha"), b" = LOCAL", new)
        with pytest.raises(InputError, match=r"ElementDataFile has no '= value'"):
            check_size(path, "metaimage")
    assert check_size(save(VOLUME, tmp_path / "ok.mha"), "metaimage") == (3, 8, 10)


@pytest.mark.parametrize("length", [b"\xff\xff\xff\xff", b"\x5b\x00\xc9\xff"])
def test_npy_header_length_beyond_the_file(tmp_path: Path, length: bytes) -> None:
    """Version 2 with a 4-byte header length of ~4 GB in a 700-byte file: NumPy allocated
    the header (MemoryError under the fuzzer's 3 GB cap); now refused from the length."""
    path = tmp_path / "a.npy"
    np.save(path, VOLUME)
    data = bytearray(path.read_bytes())
    data[6:12] = b"\x02\x00" + length  # version 2.0: 4-byte length, then the header
    path.write_bytes(bytes(data))
    declared = int.from_bytes(length, "little")
    message = rf"NPY header length of {declared:,} bytes is more than the {len(data) - 12:,}"
    with pytest.raises(InputError, match=message):
        check_size(path, "npy")
    with pytest.raises(InputError, match="NPY header length"):
        load(path)


def test_metaimage_data_file_pattern_that_corrupted_the_heap(tmp_path: Path) -> None:
    """The fuzzer's mutant (kept as found, 732 bytes): the `` LOCAL`` line deleted, so the
    ElementDataFile value runs into the compressed bytes and holds ``%&``. MetaIO formats
    a value with ``%`` as a file pattern and corrupted the heap (a crash of a *later* case:
    the "not reproducible alone" SIGABRTs; glibc's malloc check shows it on this case)."""
    path = tmp_path / "case.mha"
    path.write_bytes((FUZZ_CASES / "mha_datafile_pattern_heap.mha").read_bytes())
    for call in (lambda: check_size(path, "metaimage"), lambda: load(path)):
        with pytest.raises(InputError, match=r"ElementDataFile pattern .* is not one %d"):
            call()


def test_metaimage_data_file_patterns(tmp_path: Path) -> None:
    bad = _edited(save(VOLUME, tmp_path / "bad.mha"), b"= LOCAL", b"= slice%&x%d.raw 1 3 1")
    with pytest.raises(InputError, match=r"pattern 'slice%&x%d.raw 1 3 1' is not one %d"):
        check_size(bad, "metaimage")
    good = _edited(save(VOLUME, tmp_path / "good.mha"), b"= LOCAL", b"= slice%03d.raw 1 3 1")
    assert check_size(good, "metaimage") == (3, 8, 10)


def test_metaimage_corrupt_zlib_stream_that_hung_itk(tmp_path: Path) -> None:
    """The fuzzer's mutant (kept as found, 763 bytes): 40 header bytes inserted into the
    compressed pixels. ITK's ReadImage looped forever at 100 % CPU (SIGALRM cannot stop
    it); the stream is now inflated (in 1 MiB steps) and checked before ITK reads it."""
    path = tmp_path / "case.mha"
    path.write_bytes((FUZZ_CASES / "mha_zlib_stream_hang.mha").read_bytes())
    for call in (lambda: check_size(path, "metaimage"), lambda: load(path)):
        with pytest.raises(InputError, match="MetaImage compressed pixels are corrupt"):
            call()


def test_metaimage_stream_must_match_the_header_size(tmp_path: Path) -> None:
    seed = save(VOLUME, tmp_path / "v.mha")
    assert b"CompressedData = True" in seed.read_bytes()
    assert check_size(seed, "metaimage") == (3, 8, 10)  # 480 bytes, as DimSize says
    short = _edited(save(VOLUME, tmp_path / "s.mha"), b"DimSize = 10 8 3", b"DimSize = 10 8 2")
    with pytest.raises(InputError, match=r"give 480 bytes, the header 320; file is corrupt"):
        check_size(short, "metaimage")
    big = _edited(save(VOLUME, tmp_path / "b.mha"), b"DimSize = 10 8 3", b"DimSize = 10 8 4")
    with pytest.raises(InputError, match=r"give 480 bytes, the header 640; file is corrupt"):
        load(big)


def test_dicom_corrupt_native_pixel_data_is_not_handed_to_gdcm(tmp_path: Path) -> None:
    """The fuzzer's mutant (kept as found, ~1 KB, Explicit VR Little Endian 8 x 10): the
    PixelData element's VR bytes are garbage, so pydicom cannot decode it. SimpleITK's GDCM
    fallback then allocated 2.7 GB for the 80-pixel image. A native (uncompressed) syntax
    needs no other decoder, so the file is refused as corrupt, in bounded memory (the
    subprocess RSS bounds are in test_peak_rss.py)."""
    path = tmp_path / "case.dcm"
    path.write_bytes((FUZZ_CASES / "dicom_pixeldata_bad_vr.dcm").read_bytes())
    with pytest.raises(InputError, match=r"Unknown Value Representation.*the file is corrupt"):
        load(path)
