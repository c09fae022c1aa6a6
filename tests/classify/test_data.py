"""Data readers for every task kind (MedMNIST .npz, class folders, CSV) and bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.classify.data import read_csv, read_dataset, read_folder, read_npz
from medseg.errors import InputError
from medseg.io import save


def _npz(path: Path, shape: tuple[int, ...], labels: dict[str, np.ndarray]) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, lab in labels.items():
        arrays[f"{split}_images"] = rng.integers(0, 256, (len(lab), *shape), dtype=np.uint8)
        arrays[f"{split}_labels"] = lab
    np.savez(path, **arrays)
    return path


def _col(*values: int) -> np.ndarray:
    return np.array(values, np.uint8)[:, None]


def test_npz_multiclass_2d_gray(tmp_path: Path) -> None:
    labs = {"train": _col(0, 1, 2, 2), "val": _col(0, 1), "test": _col(2, 1, 0)}
    ds = read_npz(_npz(tmp_path / "x.npz", (8, 8), labs))
    assert ds.task == "multi-class" and ds.classes == ["0", "1", "2"]
    assert ds.images["train"].shape == (4, 1, 8, 8) and ds.images["train"].dtype == np.float32
    raw = np.load(tmp_path / "x.npz")["train_images"]
    np.testing.assert_allclose(ds.images["train"][:, 0], raw / 255.0, atol=1e-7)
    np.testing.assert_array_equal(ds.labels["test"], [2, 1, 0])
    assert ds.spatial_dims == 2 and ds.in_channels == 1 and ds.image_size == 8


def test_npz_binary_3d_and_rgb_2d(tmp_path: Path) -> None:
    labs = {"train": _col(0, 1, 1), "val": _col(1, 0), "test": _col(0, 1)}
    vol = read_npz(_npz(tmp_path / "adrenal.npz", (6, 6, 6), labs))
    assert vol.task == "binary" and vol.images["val"].shape == (2, 1, 6, 6, 6)
    assert vol.spatial_dims == 3
    rgb = read_npz(_npz(tmp_path / "rgb.npz", (8, 8, 3), labs))
    assert rgb.images["test"].shape == (2, 3, 8, 8)
    raw = np.load(tmp_path / "rgb.npz")["test_images"]
    np.testing.assert_allclose(rgb.images["test"][1, 2], raw[1, :, :, 2] / 255.0, atol=1e-7)


def test_npz_ordinal_by_name_or_option_and_multilabel(tmp_path: Path) -> None:
    labs = {"train": _col(0, 1, 2), "val": _col(0, 2), "test": _col(1, 2)}
    assert read_npz(_npz(tmp_path / "retinamnist_64.npz", (4, 4, 3), labs)).task == "ordinal"
    assert read_npz(_npz(tmp_path / "grades.npz", (4, 4), labs), task="ordinal").task == "ordinal"
    multi = {k: np.array([[1, 0, 1], [0, 1, 0]], np.uint8) for k in ("train", "val", "test")}
    ds = read_npz(_npz(tmp_path / "chest.npz", (4, 4), multi))
    assert ds.task == "multi-label" and ds.classes == ["0", "1", "2"]
    np.testing.assert_array_equal(ds.labels["val"], [[1, 0, 1], [0, 1, 0]])


def _png(path: Path, value: int, size: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((size, size), value, np.uint8)
    arr[: size // 2] = 255 - value  # not constant, so min-max scaling keeps a pattern
    save(arr, path)
    return path


def test_folder_of_classes_stratified_split(tmp_path: Path) -> None:
    for c, v in (("benign", 10), ("malignant", 200)):
        for i in range(10):
            _png(tmp_path / c / f"{i}.png", v, size=10 + i % 2)
    ds = read_folder(tmp_path, size=16)
    assert ds.task == "binary" and ds.classes == ["benign", "malignant"]
    # per class of 10: 2 test, 1 val, 7 train
    assert [len(ds.labels[s]) for s in ("train", "val", "test")] == [14, 2, 4]
    assert ds.images["train"].shape == (14, 1, 16, 16)
    np.testing.assert_array_equal(np.bincount(ds.labels["test"]), [2, 2])
    assert all(
        Path(p).parent.name == ds.classes[y]
        for p, y in zip(ds.paths["test"], ds.labels["test"], strict=True)
    )


def test_folder_with_split_subfolders(tmp_path: Path) -> None:
    for split, n in (("train", 2), ("val", 1), ("test", 1)):
        for c in ("a", "b", "c"):
            for i in range(n):
                _png(tmp_path / split / c / f"{i}.png", 50)
    ds = read_dataset(tmp_path, size=8)
    assert ds.task == "multi-class"
    assert [len(ds.labels[s]) for s in ("train", "val", "test")] == [6, 3, 3]


def test_csv_with_nifti_volumes_and_splits(tmp_path: Path) -> None:
    rows = ["path,label,split"]
    for i, (lab, split) in enumerate(
        [
            ("no", "train"),
            ("yes", "train"),
            ("no", "val"),
            ("yes", "val"),
            ("no", "test"),
            ("yes", "test"),
        ]
    ):
        vol = np.zeros((6, 6, 6), np.float32)
        vol[: 2 + i % 3] = 1.0
        save(vol, tmp_path / f"v{i}.nii.gz")
        rows.append(f"v{i}.nii.gz,{lab},{split}")
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    ds = read_csv(tmp_path / "data.csv", size=4)
    assert ds.spatial_dims == 3 and ds.images["train"].shape == (2, 1, 4, 4, 4)
    np.testing.assert_array_equal(ds.labels["val"], [0, 1])
    assert ds.classes == ["no", "yes"]


def test_bad_inputs_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    for c in ("a", "b"):
        for i in range(4):
            _png(bad / c / f"{i}.png", 30)
    (bad / "a" / "9.png").write_bytes(b"not a png at all")
    with pytest.raises(InputError, match=r"9\.png"):
        read_folder(bad)
    (tmp_path / "l.csv").write_text("path,label\nbad/a/0.png,a\nbad/b/0.png,zebra\n")
    with pytest.raises(InputError, match="'zebra' is not in the class list"):
        read_csv(tmp_path / "l.csv", classes=["a", "b"])
    save(np.zeros((4, 4, 4), np.float32), tmp_path / "v.nii.gz")
    rows = "path,label,split\nbad/a/0.png,a,train\nv.nii.gz,b,train\nbad/a/1.png,a,val\n"
    (tmp_path / "mixed.csv").write_text(
        rows + "bad/b/1.png,b,val\nbad/a/2.png,a,test\nbad/b/2.png,b,test\n"
    )
    with pytest.raises(InputError, match="mixed dimensionality"):
        read_csv(tmp_path / "mixed.csv")
    (tmp_path / "nohead.csv").write_text("file,class\nx.png,a\n")
    with pytest.raises(InputError, match="'path' and 'label'"):
        read_csv(tmp_path / "nohead.csv")


def test_npz_one_class_split_missing_arrays_and_garbage(tmp_path: Path) -> None:
    labs = {"train": _col(0, 1), "val": _col(1, 1), "test": _col(0, 1)}
    with pytest.raises(InputError, match="split 'val' holds one class only"):
        read_npz(_npz(tmp_path / "one.npz", (4, 4), labs))
    np.savez(tmp_path / "partial.npz", train_images=np.zeros((2, 4, 4)), train_labels=_col(0, 1))
    with pytest.raises(InputError, match="missing arrays"):
        read_npz(tmp_path / "partial.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(InputError, match="cannot read"):
        read_dataset(tmp_path / "junk.npz")
    with pytest.raises(InputError, match="data not found"):
        read_dataset(tmp_path / "nothing.npz")
    with pytest.raises(InputError, match="unknown task"):
        read_npz(
            _npz(
                tmp_path / "ok.npz",
                (4, 4),
                {"train": _col(0, 1), "val": _col(0, 1), "test": _col(0, 1)},
            ),
            task="regression",
        )


def test_to_unit_range_one_rule_per_dtype() -> None:
    from medseg.classify.data import to_unit_range

    u8 = np.array([[0, 51], [102, 255]], np.uint8)
    assert np.array_equal(to_unit_range(u8), np.array([[0, 0.2], [0.4, 1.0]], np.float32))
    assert to_unit_range(u8).dtype == np.float32
    assert np.array_equal(to_unit_range(np.array([True, False])), [1.0, 0.0])
    inside = np.array([0.25, 0.5], np.float64)
    assert np.array_equal(to_unit_range(inside), [0.25, 0.5])  # floats in [0, 1] kept
    assert np.array_equal(to_unit_range(np.array([100, 300, 500], np.uint16)), [0, 0.5, 1])
    assert np.array_equal(to_unit_range(np.array([-1000.0, 0.0, 1000.0])), [0, 0.5, 1])
    assert np.array_equal(to_unit_range(np.full(3, 7, np.int16)), [0, 0, 0])
    with pytest.raises(InputError, match="NaN or infinite"):
        to_unit_range(np.array([1.0, np.inf]))


def test_same_uint8_image_from_npz_and_png_gives_same_input_and_proba(tmp_path: Path) -> None:
    import torch
    from PIL import Image

    from medseg.classify import Classifier, ClassifierConfig
    from medseg.classify.data import load_images

    rng = np.random.default_rng(3)
    arrays = {f"{s}_labels": _col(0, 1, 0, 1) for s in ("train", "val", "test")}
    for s in ("train", "val", "test"):  # 20..199: min-max scaling would change the values
        arrays[f"{s}_images"] = rng.integers(20, 200, (4, 28, 28, 3), dtype=np.uint8)
    np.savez(tmp_path / "rgb.npz", **arrays)
    ds = read_npz(tmp_path / "rgb.npz")
    raw = arrays["train_images"]
    Image.fromarray(raw[1]).save(tmp_path / "one.png")
    Image.fromarray(raw[2, :, :, 0]).save(tmp_path / "gray.png")
    from_png = load_images([str(tmp_path / "one.png")], size=28, channels=3)
    assert from_png.dtype == np.float32
    assert np.array_equal(from_png[0], ds.images["train"][1])  # bit for bit
    assert np.array_equal(from_png[0], np.moveaxis(raw[1], -1, 0) / np.float32(255))
    gray = load_images([str(tmp_path / "gray.png")], size=28, channels=1)
    assert np.array_equal(gray[0, 0], raw[2, :, :, 0] / np.float32(255))
    torch.manual_seed(0)
    cfg = ClassifierConfig("resnet18", "binary", ("0", "1"), 2, 3, 28, 28)
    clf = Classifier(cfg)
    p_npz = clf.predict_proba(ds.images["train"][1:2])
    p_png = clf.predict_proba([tmp_path / "one.png"])
    assert p_npz.shape == (1, 2) and np.array_equal(p_npz, p_png)
