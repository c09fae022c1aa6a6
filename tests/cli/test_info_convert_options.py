"""``medseg info``/``convert`` options ``--key``, ``--index`` and ``--allow-irregular-slices``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from synthetic_dicom import write_series  # tests/_support (pytest's pythonpath)

from medseg.cli.main import main
from medseg.io import LabelMap, load, load_label, save


@pytest.fixture
def mnist(tmp_path) -> tuple[Path, np.ndarray]:
    train = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    path = tmp_path / "mini.npz"
    np.savez(path, train_images=train, train_labels=np.arange(3, dtype=np.uint8)[:, None])
    return path, train


def test_info_lists_npz_arrays_without_key(mnist, capsys):
    path, _ = mnist
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "NPZ with 2 arrays; pick one with --key NAME (and --index N):" in out
    assert "  train_images  (3, 4, 5)            uint8" in out
    assert "  train_labels  (3, 1)               uint8" in out
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["arrays"][0] == {"key": "train_images", "shape": [3, 4, 5], "dtype": "uint8"}


def test_info_and_convert_with_key_and_index(mnist, tmp_path, capsys):
    path, train = mnist
    assert main(["info", str(path), "--key", "train_images", "--index", "2", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape"] == [4, 5] and (info["npz_key"], info["index"]) == ("train_images", 2)
    assert (info["min"], info["max"]) == (40.0, 59.0)
    out = tmp_path / "s2.png"
    assert main(["convert", str(path), str(out), "--key", "train_images", "--index", "2"]) == 0
    np.testing.assert_array_equal(load(out).array, train[2])
    vol = tmp_path / "all.nrrd"  # without --index the (3, 4, 5) stack is a volume
    assert main(["convert", str(path), str(vol), "--key", "train_images"]) == 0
    np.testing.assert_array_equal(load(vol).array, train)


def test_convert_label_npz_key(tmp_path):
    masks = np.array([[[0, 1], [2, 0]], [[3, 3], [0, 0]]], np.uint8)
    np.savez(tmp_path / "m.npz", masks=masks, ids=np.arange(2))
    out = tmp_path / "m1.nii.gz"
    args = ["convert", str(tmp_path / "m.npz"), str(out), "--label", "--key", "masks"]
    assert main([*args, "--index", "1"]) == 0
    assert load_label(out).labels == [3]


def test_npz_errors(mnist, tmp_path, capsys):
    path, _ = mnist
    assert main(["convert", str(path), str(tmp_path / "o.nrrd")]) == 2
    err = capsys.readouterr().err
    assert "mini.npz: NPZ has several arrays (train_images (3, 4, 5) uint8" in err
    assert "--key NAME" in err and not (tmp_path / "o.nrrd").exists()
    assert main(["info", str(path), "--key", "x"]) == 2
    assert "mini.npz: NPZ has no array 'x'" in capsys.readouterr().err
    assert main(["info", str(path), "--key", "train_images", "--index", "9"]) == 2
    assert "index 9 is out of range for 3 samples" in capsys.readouterr().err


def test_irregular_series_refused_then_opt_in(tmp_path, capsys):
    s = write_series(tmp_path / "irr", shape=(4, 3, 2), gaps=(5.0, 1.0, 1.0))
    assert main(["info", str(s.folder)]) == 2
    err = capsys.readouterr().err
    assert f"{s.folder} series {s.series_uid}: irregular slice positions (gaps 5, 1, 1 mm)" in err
    assert "--allow-irregular-slices" in err
    out = tmp_path / "irr.nii.gz"
    assert main(["convert", str(s.folder), str(out)]) == 2 and not out.exists()
    capsys.readouterr()
    assert main(["info", str(s.folder), "--allow-irregular-slices"]) == 0
    text = capsys.readouterr().out
    assert "slice gaps:      5, 1, 1 mm (not uniform; spacing above is the mean gap)" in text
    assert main(["info", str(s.folder), "--allow-irregular-slices", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["uniform_spacing"] is False and info["slice_gaps"] == pytest.approx([5, 1, 1])
    assert [p[1] for p in info["slice_positions"]] == pytest.approx([20, 25, 26, 27])
    assert main(["convert", str(s.folder), str(out), "--allow-irregular-slices"]) == 0
    np.testing.assert_allclose(load(out).spacing, (7 / 3, 0.7, 0.8), atol=1e-5)


def test_dicom_seg_export_from_irregular_source(tmp_path, capsys):
    s = write_series(tmp_path / "irr", shape=(3, 4, 5), gaps=(4.0, 1.0))
    src = load(s.folder, irregular="mean")
    arr = np.zeros(src.shape, np.uint8)
    arr[1, 1:3, 2:4] = 2
    save(LabelMap.like(src, arr), tmp_path / "l.nii.gz")
    args = ["convert", str(tmp_path / "l.nii.gz"), str(tmp_path / "seg.dcm"), "--label",
            "--source", str(s.folder)]  # fmt: skip
    assert main(args) == 2 and "--allow-irregular-slices" in capsys.readouterr().err
    assert main([*args, "--allow-irregular-slices"]) == 0
    back = load_label(tmp_path / "seg.dcm", irregular="mean")  # source found next to it
    np.testing.assert_array_equal(back.array, arr)
