"""File-naming rules: endings (longest first, case-insensitive) and ``_CCCC`` channel suffixes."""

from __future__ import annotations

from medseg.io.naming import (
    DATASET_ENDINGS,
    IMAGE_ENDINGS,
    case_stem,
    split_channel,
    split_ending,
)


def test_split_ending_longest_first_and_keeps_the_written_case() -> None:
    assert split_ending("ct_0000.nii.gz") == ("ct_0000", ".nii.gz")
    assert split_ending("CT.NII.GZ") == ("CT", ".NII.GZ")
    assert split_ending("img.v2.png") == ("img.v2", ".png")
    assert split_ending("notes.txt") is None
    assert split_ending(".nii.gz") is None  # a hidden file is not a case named ""


def test_split_ending_restricted_to_dataset_endings() -> None:
    assert split_ending("a.jpg") == ("a", ".jpg")
    assert split_ending("a.jpg", DATASET_ENDINGS) is None
    assert set(DATASET_ENDINGS) <= set(IMAGE_ENDINGS)


def test_split_channel_needs_exactly_four_digits() -> None:
    assert split_channel("liver_3_0001") == ("liver_3", 1)
    assert split_channel("case_000") is None
    assert split_channel("case_00001") is None  # five digits: no channel suffix
    assert split_channel("_0000") is None  # no case name before the suffix
    assert split_channel("case") is None


def test_case_stem() -> None:
    assert case_stem("a/b/case_01.nii.gz") == "case_01"
    assert case_stem("x.NII") == "x"
    assert case_stem("noext") == "noext"
