"""``partial_labels`` in dataset.json: parsing, validation and the annotated-class mask."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medseg.data.nnunet import annotated_classes, read_dataset
from medseg.errors import InputError
from medseg.training.synthetic import write_disk_dataset


def _dataset(tmp_path: Path, partial: object) -> Path:
    root = write_disk_dataset(tmp_path / "ds", 3, (16, 16))
    meta = json.loads((root / "dataset.json").read_text())
    meta["labels"] = {"background": 0, "disk": 1, "ring": 2}
    meta["partial_labels"] = partial
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_partial_labels_are_parsed_and_masked(tmp_path: Path) -> None:
    ds = read_dataset(_dataset(tmp_path, {"case01": ["ring", "background"]}))
    assert ds.partial_labels == {"case01": ("ring",)}
    assert annotated_classes(ds, "case01", (0, 1, 2)) == [True, False, True]
    assert annotated_classes(ds, "case00", (0, 1, 2)) == [True, True, True]


def test_no_partial_labels_key_means_every_case_is_full(tmp_path: Path) -> None:
    root = write_disk_dataset(tmp_path / "ds", 2, (16, 16))
    assert read_dataset(root).partial_labels == {}


@pytest.mark.parametrize(
    ("partial", "message"),
    [
        ({"case01": ["liver"]}, r"partial_labels\['case01'\] names class 'liver', which is not"),
        ({"case09": ["disk"]}, r"names case 'case09', which is not a training case"),
        ({"case01": "disk"}, r"partial_labels\['case01'\] must be a list of class names"),
        ({"case01": ["background"]}, r"annotates no foreground class"),
        (["case01"], r"'partial_labels' must be a mapping"),
    ],
)
def test_bad_partial_labels_name_the_problem(tmp_path: Path, partial: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_dataset(_dataset(tmp_path, partial))
