"""``images/`` + ``labels/`` folders -> nnU-Net raw layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.data.nnunet import check_dataset, load_case
from medseg.errors import InputError
from medseg.io import load_label, save
from medseg.io.image import Image, LabelMap
from medseg.training.convert import convert_folder


def _png_source(root: Path) -> Path:
    for i in range(3):
        img = np.full((5, 6), 10 * i, np.uint8)
        save(Image(img), root / "images" / f"img{i}.png")
    lab = np.zeros((5, 6), np.uint8)
    lab[1:3, 1:3] = 1
    lab[4, 5] = 2
    save(LabelMap(lab), root / "labels" / "img0.png")
    save(LabelMap((lab > 0).astype(np.uint8)), root / "labels" / "img1.png")
    return root


def test_convert_2d_png(tmp_path: Path) -> None:
    src = _png_source(tmp_path / "src")
    ds = convert_folder(src, tmp_path / "dst")
    assert [c.case_id for c in ds.training] == ["img0", "img1"]
    assert [c.case_id for c in ds.test] == ["img2"]
    meta = json.loads((tmp_path / "dst" / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "label_1": 1, "label_2": 2}
    assert meta["channel_names"] == {"0": "channel_0"}
    assert meta["file_ending"] == ".png" and meta["numTraining"] == 2
    # image bytes are copied unchanged
    assert (tmp_path / "dst/imagesTr/img1_0000.png").read_bytes() == (
        src / "images/img1.png"
    ).read_bytes()
    assert check_dataset(ds) == []


def test_binarize_instance_labels(tmp_path: Path) -> None:
    src = tmp_path / "src"
    save(Image(np.zeros((4, 4), np.uint8)), src / "images" / "a.png")
    inst = np.array([[0, 1, 1, 0], [0, 0, 300, 0], [7, 0, 0, 0], [0, 0, 0, 0]], np.uint16)
    save(LabelMap(inst), src / "labels" / "a.png")
    ds = convert_folder(src, tmp_path / "dst", binarize=True)
    lab = load_label(ds.training[0].label)
    assert lab.array.tolist() == (inst > 0).astype(int).tolist()
    assert ds.labels == {"background": 0, "foreground": 1}


def test_too_many_label_values_need_binarize(tmp_path: Path) -> None:
    src = tmp_path / "src"
    save(Image(np.zeros((20, 20), np.uint8)), src / "images" / "a.png")
    save(LabelMap(np.arange(400, dtype=np.uint16).reshape(20, 20)), src / "labels" / "a.png")
    with pytest.raises(InputError, match="look like instances; use --binarize"):
        convert_folder(src, tmp_path / "dst")


def test_convert_3d_channel_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for c in range(2):
        save(
            Image(np.full((3, 4, 5), c, np.float32), spacing=(2, 1, 1)),
            src / "images" / f"p1_{c:04d}.nii.gz",
        )
    save(LabelMap(np.ones((3, 4, 5), np.uint8), spacing=(2, 1, 1)), src / "labels" / "p1.nii.gz")
    ds = convert_folder(src, tmp_path / "dst", channel_names=["T1", "T2"])
    assert ds.channel_names == {0: "T1", 1: "T2"}
    image, _ = load_case(ds, ds.training[0])
    assert image.array.shape == (3, 4, 5, 2)
    assert image.array[..., 1].max() == 1.0 and image.spacing == (2.0, 1.0, 1.0)


def test_convert_refuses_non_empty_destination(tmp_path: Path) -> None:
    src = _png_source(tmp_path / "src")
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "x.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty"):
        convert_folder(src, tmp_path / "dst")
    with pytest.raises(InputError, match="no supported images"):
        convert_folder(tmp_path / "nothing", tmp_path / "dst2")


def test_convert_shared_datasets(shared_data: Path, tmp_path: Path) -> None:
    ds = convert_folder(shared_data / "cxr_lung_demo", tmp_path / "cxr")
    assert ds.channel_names == {0: "gray"} and ds.labels == {"background": 0, "lung": 1}
    assert len(ds.training) == 4 and check_dataset(ds) == []
    with pytest.raises(InputError, match="instance maps"):
        convert_folder(shared_data / "stardist_nuclei", tmp_path / "nuc")
    nuc = convert_folder(shared_data / "stardist_nuclei", tmp_path / "nuc2", binarize=True)
    assert nuc.labels == {"background": 0, "nucleus": 1}
    assert set(np.unique(load_label(nuc.training[0].label).array)) == {0, 1}
