"""nnU-Net raw layout: reading, ``check`` messages on broken datasets, loading cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.data.nnunet import check_dataset, format_issues, load_case, read_dataset
from medseg.errors import InputError
from medseg.io import save
from medseg.io.image import Image, LabelMap
from medseg.training.synthetic import write_disk_dataset


@pytest.fixture()
def ds3d(tmp_path: Path) -> Path:
    """Three 2-channel 3D cases (6, 10, 12) with spacing (3, 1, 1) and one test case."""
    return write_disk_dataset(
        tmp_path / "ds",
        3,
        (6, 10, 12),
        spacing=(3.0, 1.0, 1.0),
        channel_names=("CT", "T2"),
        n_test=1,
    )


def _errors(root: Path) -> list[str]:
    return [str(i) for i in check_dataset(read_dataset(root)) if i.level == "error"]


def test_read_dataset_parses_layout(ds3d: Path) -> None:
    ds = read_dataset(ds3d)
    assert ds.channel_names == {0: "CT", 1: "T2"}
    assert ds.labels == {"background": 0, "disk": 1}
    assert ds.label_values == (0, 1)
    assert ds.file_ending == ".nii.gz"
    assert [c.case_id for c in ds.training] == ["case00", "case01", "case02"]
    assert [c.case_id for c in ds.test] == ["case03"]
    assert [p.name for p in ds.training[1].images] == ["case01_0000.nii.gz", "case01_0001.nii.gz"]
    assert ds.training[1].label.name == "case01.nii.gz"
    assert ds.problems == ()


def test_load_case_stacks_channels_last(ds3d: Path) -> None:
    ds = read_dataset(ds3d)
    image, label = load_case(ds, ds.training[0])
    assert image.array.shape == (6, 10, 12, 2)
    assert image.channels and image.spacing == (3.0, 1.0, 1.0)
    assert label.shape == (6, 10, 12)
    assert set(np.unique(label.array)) == {0, 1}


def test_clean_dataset_has_no_issues(ds3d: Path) -> None:
    assert check_dataset(read_dataset(ds3d)) == []


def test_missing_label_is_reported(ds3d: Path) -> None:
    (ds3d / "labelsTr" / "case01.nii.gz").unlink()
    errors = _errors(ds3d)
    assert len(errors) == 1
    assert "case01: label file" in errors[0] and "is missing" in errors[0]


def test_missing_channel_file_is_reported(ds3d: Path) -> None:
    (ds3d / "imagesTr" / "case02_0000.nii.gz").unlink()
    errors = _errors(ds3d)
    assert any("case02: channel files ['0000'] are missing" in e for e in errors)


def test_label_geometry_mismatch_is_reported(ds3d: Path) -> None:
    path = ds3d / "labelsTr" / "case00.nii.gz"
    save(LabelMap(np.zeros((6, 10, 12), np.uint8), spacing=(2.0, 1.0, 1.0)), path)
    errors = _errors(ds3d)
    assert len(errors) == 1
    assert "case00" in errors[0] and "label spacing [2.0, 1.0, 1.0]" in errors[0]
    assert "image spacing [3.0, 1.0, 1.0]" in errors[0]


def test_label_shape_mismatch_is_reported(ds3d: Path) -> None:
    save(
        LabelMap(np.zeros((6, 10, 11), np.uint8), spacing=(3.0, 1.0, 1.0)),
        ds3d / "labelsTr" / "case00.nii.gz",
    )
    errors = _errors(ds3d)
    assert "label shape (6, 10, 11) differs from image (6, 10, 12)" in errors[0]


def test_label_value_not_in_dataset_json(ds3d: Path) -> None:
    lab = np.zeros((6, 10, 12), np.uint8)
    lab[2, 3:5, 3:5] = 3
    save(LabelMap(lab, spacing=(3.0, 1.0, 1.0)), ds3d / "labelsTr" / "case02.nii.gz")
    errors = _errors(ds3d)
    assert errors == ["ERROR: case02: label values [3] are not in dataset.json labels [0, 1]"]


def test_channel_count_mismatch(ds3d: Path) -> None:
    meta = json.loads((ds3d / "dataset.json").read_text())
    meta["channel_names"]["2"] = "T1"
    (ds3d / "dataset.json").write_text(json.dumps(meta))
    errors = _errors(ds3d)
    assert len(errors) == 3
    assert "2 image channels found, dataset.json channel_names lists 3" in errors[0]


def test_spacing_outlier_and_num_training_warnings(tmp_path: Path) -> None:
    root = write_disk_dataset(tmp_path / "ds", 4, (8, 8, 8))
    arr = np.zeros((8, 8, 8), np.float32)
    save(Image(arr, spacing=(5.0, 1.0, 1.0)), root / "imagesTr" / "case03_0000.nii.gz")
    save(
        LabelMap(arr.astype(np.uint8), spacing=(5.0, 1.0, 1.0)), root / "labelsTr" / "case03.nii.gz"
    )
    meta = json.loads((root / "dataset.json").read_text())
    meta["numTraining"] = 7
    (root / "dataset.json").write_text(json.dumps(meta))
    issues = check_dataset(read_dataset(root))
    assert all(i.level == "warning" for i in issues)
    text = format_issues(issues)
    assert "numTraining is 7, found 4 cases" in text
    assert "case03: spacing (5.0, 1.0, 1.0) is more than 3x away from the median" in text
    assert "case03: label has no foreground" in text


def test_mixed_2d_and_3d_is_an_error(tmp_path: Path) -> None:
    root = write_disk_dataset(tmp_path / "ds", 2, (8, 8, 8))
    save(Image(np.zeros((8, 8), np.float32)), root / "imagesTr" / "flat_0000.nii.gz")
    save(LabelMap(np.zeros((8, 8), np.uint8)), root / "labelsTr" / "flat.nii.gz")
    errors = _errors(root)
    assert any("cases mix 2D and 3D images" in e for e in errors)


def test_orphan_label_and_bad_image_name(ds3d: Path) -> None:
    save(LabelMap(np.zeros((6, 10, 12), np.uint8)), ds3d / "labelsTr" / "ghost.nii.gz")
    save(Image(np.zeros((6, 10, 12), np.float32)), ds3d / "imagesTr" / "noindex.nii.gz")
    errors = _errors(ds3d)
    assert any("ghost: label ghost.nii.gz has no image in imagesTr" in e for e in errors)
    assert any("image name must end with _CCCC.nii.gz" in e for e in errors)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labels": {"background": 0, "a": [1, 2]}}, "region-based label"),
        ({"labels": {"a": 1}}, "must contain background with value 0"),
        ({"labels": {"background": 0, "a": 1, "b": 1}}, "two label names share one value"),
        ({"labels": {"background": 0, "ignore": 2}}, "'ignore' label is not supported"),
        ({"channel_names": {"1": "CT"}}, "channel_names must be numbered 0..N-1"),
        ({"file_ending": ".jpg"}, "file_ending '.jpg' not supported"),
    ],
)
def test_bad_dataset_json_raises(ds3d: Path, change: dict, message: str) -> None:
    meta = json.loads((ds3d / "dataset.json").read_text())
    meta.update(change)
    (ds3d / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=message):
        read_dataset(ds3d)


def test_missing_dataset_json_raises(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no dataset\.json"):
        read_dataset(tmp_path)
    with pytest.raises(InputError, match="no such dataset folder"):
        read_dataset(tmp_path / "nope")


def test_png_rgb_case_counts_three_channels(tmp_path: Path) -> None:
    root = tmp_path / "rgb"
    rgb = np.zeros((6, 7, 3), np.uint8)
    rgb[..., 1] = 200
    save(Image(rgb, channels=True), root / "imagesTr" / "a_0000.png")
    save(LabelMap(np.ones((6, 7), np.uint8)), root / "labelsTr" / "a.png")
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "R", "1": "G", "2": "B"},
                "labels": {"background": 0, "x": 1},
                "numTraining": 1,
                "file_ending": ".png",
            }
        )
    )
    ds = read_dataset(root)
    image, _ = load_case(ds, ds.training[0])
    assert image.array.shape == (6, 7, 3)
    assert image.array[0, 0].tolist() == [0.0, 200.0, 0.0]
    assert check_dataset(ds) == []


def test_image_case_ids_and_dataset_json(tmp_path: Path) -> None:
    from medseg.data.nnunet import image_case_ids, read_dataset_json

    root = write_disk_dataset(tmp_path / "ds", 3, (8, 8))
    (root / "labelsTr" / "case01.png").unlink()  # image ids do not depend on the labels
    assert image_case_ids(root, ".png") == ["case00", "case01", "case02"]
    assert image_case_ids(tmp_path / "nothing", ".png") == []
    assert read_dataset_json(root)["labels"] == {"background": 0, "disk": 1}
    (root / "dataset.json").write_text("{}")
    with pytest.raises(InputError, match="missing key 'channel_names'"):
        read_dataset_json(root)
