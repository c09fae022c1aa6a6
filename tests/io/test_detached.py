"""Detached data files of NRRD/MetaImage headers must lie next to their header."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medseg.errors import InputError
from medseg.io import load, save
from medseg.io.detached import (
    MAX_HEADER_BYTES,
    DataFileRef,
    check_data_files,
    detached_refs,
)
from medseg.io.limits import check_size

MHA_HEAD = "ObjectType = Image\nNDims = 2\nDimSize = 8 8\nElementType = MET_UCHAR\n"
NRRD_HEAD = "NRRD0004\ntype: uint8\ndimension: 2\nsizes: 8 8\nencoding: raw\n"


@pytest.fixture()
def secret(tmp_path: Path) -> Path:
    """A file outside the header's folder that SimpleITK would read as 8 x 8 pixels."""
    path = tmp_path / "outside" / "secret.raw"
    path.parent.mkdir()
    np.arange(64, dtype=np.uint8).tofile(path)
    return path


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "headers"
    path.mkdir()
    return path


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("name", "tail"),
    [
        ("abs.mha", "ElementDataFile = {abs}\n"),
        ("rel.mhd", "ElementDataFile = ../outside/secret.raw\n"),
        ("colon.mha", "ElementDataFile:{abs}\n"),
        ("newline.mha", "ElementDataFile\n= {abs}\n"),  # ITK skips to the '=' across lines
        ("crlf.mha", "  ElementDataFile \t =  {abs}  \r\n"),
        ("list.mhd", "ElementDataFile = LIST\nok.raw\n{abs}\n"),
        ("pattern.mhd", "ElementDataFile = ../outside/secret%d.raw 1 1 1\n"),
        ("dots.mhd", "ElementDataFile = ..%.0d/outside/secret.raw 1 1 1\n"),  # '%.0d' -> ''
        ("abs.nrrd", "data file: {abs}\n\n"),
        ("rel.nhdr", "datafile: ../outside/secret.raw\n"),
        ("upper.nhdr", "DATA FILE: {abs}\n"),
        ("list.nhdr", "data file: LIST 1\nok.raw\n{abs}\n"),
        ("pattern.nhdr", "data file: /tmp/slice%03d.raw 0 7 1 1\n"),
    ],
)
def test_data_file_outside_the_folder_is_refused(
    folder: Path, secret: Path, name: str, tail: str
) -> None:
    head = MHA_HEAD if name.endswith((".mha", ".mhd")) else NRRD_HEAD
    path = _write(folder / name, head + tail.format(abs=secret))
    field = "ElementDataFile" if name.endswith((".mha", ".mhd")) else "data file"
    expected = rf"{re.escape(str(path))}: header field {field} names the data file .* not inside"
    with pytest.raises(InputError, match=expected):
        load(path)
    with pytest.raises(InputError, match=expected):  # the header check refuses it first
        check_size(path, "metaimage" if field == "ElementDataFile" else "nrrd")


def test_itk_would_read_the_crafted_header(folder: Path, secret: Path) -> None:
    """Why the check exists: without it SimpleITK returns the other file's bytes as pixels."""
    path = _write(folder / "x.mha", MHA_HEAD + f"ElementDataFile = {secret}\n")
    leaked = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert np.array_equal(leaked.ravel(), np.arange(64, dtype=np.uint8))


def test_symlinked_data_file_pointing_outside_is_refused(folder: Path, secret: Path) -> None:
    (folder / "x.raw").symlink_to(secret)
    path = _write(folder / "x.mhd", MHA_HEAD + "ElementDataFile = x.raw\n")
    with pytest.raises(InputError, match=r"names the data file 'x\.raw', which is not inside"):
        load(path)


def test_pairs_in_one_folder_still_load(folder: Path) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    for name in ("pair.mhd", "pair.nhdr", "one.mha", "one.nrrd"):
        save(arr, folder / name)
        assert np.array_equal(load(folder / name).array, arr), name
    assert detached_refs(folder / "pair.mhd", "metaimage") == [
        DataFileRef("ElementDataFile", "pair.zraw")
    ]
    assert detached_refs(folder / "pair.nhdr", "nrrd") == [DataFileRef("data file", "pair.raw.gz")]
    assert detached_refs(folder / "one.mha", "metaimage") == []
    assert detached_refs(folder / "one.nrrd", "nrrd") == []


def test_subfolder_and_local_names_are_accepted(folder: Path) -> None:
    (folder / "data").mkdir()
    np.arange(64, dtype=np.uint8).tofile(folder / "data" / "x.raw")
    path = _write(folder / "sub.mhd", MHA_HEAD + "ElementDataFile = data/x.raw\n")
    assert load(path).array[1, 0] == 8
    check_data_files(folder / "sub.mhd", "metaimage")
    local = _write(folder / "l.mha", MHA_HEAD + "ElementDataFile = Local\n" + "x" * 64)
    assert detached_refs(local, "metaimage") == []
    assert load(local).array[0, 0] == ord("x")


def test_comments_and_lowercase_mha_keys(folder: Path, secret: Path) -> None:
    # A NRRD comment is not a field (ITK ignores it, so does the check).
    nrrd = _write(folder / "c.nhdr", NRRD_HEAD + f"# data file: {secret}\n")
    assert detached_refs(nrrd, "nrrd") == []
    # ITK reads 'ElementDataFile' in exact case only; any case before it is still checked.
    mha = _write(
        folder / "k.mha", MHA_HEAD + f"elementdatafile = {secret}\nElementDataFile = LOCAL\n"
    )
    assert detached_refs(mha, "metaimage") == [DataFileRef("ElementDataFile", str(secret))]
    with pytest.raises(InputError, match="ElementDataFile names the data file"):
        check_data_files(mha, "metaimage")


def test_headers_without_an_end_are_refused(folder: Path) -> None:
    huge = _write(folder / "h.mha", MHA_HEAD + "Comment = " + "x" * MAX_HEADER_BYTES)
    with pytest.raises(InputError, match="no ElementDataFile in the first 1,048,576 bytes"):
        load(huge)
    huge_nrrd = _write(folder / "h.nhdr", NRRD_HEAD + "# " + "x" * MAX_HEADER_BYTES)
    with pytest.raises(InputError, match="NRRD header longer than 1,048,576 bytes"):
        load(huge_nrrd)
    # without ElementDataFile at all ITK's own error applies
    plain = _write(folder / "none.mha", MHA_HEAD)
    assert detached_refs(plain, "metaimage") == []
    with pytest.raises(InputError, match=r"none\.mha: cannot read"):
        load(plain)
    assert detached_refs(plain, "png") == []
