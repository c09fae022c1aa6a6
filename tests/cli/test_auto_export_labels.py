"""``medseg auto export-labels DATASTORE OUT`` from a label store built with its own save
API, and ``medseg auto train|run --init`` from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.cli.main import main
from medseg.data.nnunet import check_dataset, read_dataset
from medseg.io import load, load_label, save
from medseg.io.image import Image
from medseg.server.datastore import Datastore
from medseg.server.labelstore import LabelInfo, LabelStore
from medseg.training.synthetic import write_disk_dataset


def _lab(value: int, name: str) -> LabelInfo:
    return LabelInfo(value, name, "#ff0000")


def _store(root: Path) -> tuple[Datastore, LabelStore, dict[str, object]]:
    """A datastore with 2D ``a.png``, ``sub/b 1.png``, ``c.png`` (never labelled)."""
    rng = np.random.default_rng(0)
    for rel in ("a.png", "sub/b 1.png", "c.png"):
        save(Image(rng.integers(0, 255, (8, 10)).astype(np.uint8)), root / rel)
    ds = Datastore(root)
    return ds, LabelStore(ds), {e.rel: e for e in ds.scan()}


def _labels(shape: tuple[int, ...], values: dict[tuple, int]) -> np.ndarray:
    arr = np.zeros(shape, np.uint8)
    for idx, v in values.items():
        arr[idx] = v
    return arr


def test_export_latest_versions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds, store, e = _store(tmp_path / "store")
    img_a, img_b = ds.load(e["a.png"].id), ds.load(e["sub/b 1.png"].id)
    store.save(e["a.png"], img_a, _labels((8, 10), {(0, 0): 1}), [_lab(1, "nucleus")])
    latest_a = _labels((8, 10), {(1, 1): 1, (2, 3): 2})
    store.save(e["a.png"], img_a, latest_a, [_lab(1, "nucleus"), _lab(2, "membrane")])
    latest_b = _labels((8, 10), {(4, 4): 1})
    store.save(e["sub/b 1.png"], img_b, latest_b, [_lab(1, "nucleus")])
    out = tmp_path / "out"
    assert main(["auto", "export-labels", str(tmp_path / "store"), str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 labelled images" in text and "skipped 1 image(s) without a saved label: c.png" in text
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "nucleus": 1, "membrane": 2}
    assert meta["channel_names"] == {"0": "channel_0"} and meta["file_ending"] == ".png"
    assert meta["numTraining"] == 2
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == [
        "a_0000.png",
        "sub_b_1_0000.png",
    ]
    assert (out / "imagesTr" / "a_0000.png").read_bytes() == (tmp_path / "store/a.png").read_bytes()
    assert (out / "labelsTr" / "a.png").read_bytes() == (
        tmp_path / "store/labels/a.png/v0002.png"
    ).read_bytes()
    np.testing.assert_array_equal(load_label(out / "labelsTr" / "a.png").array, latest_a)
    np.testing.assert_array_equal(load_label(out / "labelsTr" / "sub_b_1.png").array, latest_b)
    record = json.loads((out / "export.json").read_text())
    assert [(r["case"], r["image"], r["version"], r["image_file"]) for r in record["cases"]] == [
        ("a", "a.png", 2, "copied"),
        ("sub_b_1", "sub/b 1.png", 1, "copied"),
    ]
    assert record["skipped"] == ["c.png"]
    dataset = read_dataset(out)
    assert [c.case_id for c in dataset.training] == ["a", "sub_b_1"]
    assert [i for i in check_dataset(dataset) if i.level == "error"] == []


def test_export_volume_rewrites_image_and_links(tmp_path: Path) -> None:
    root = tmp_path / "store"
    vol = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    save(Image(vol, spacing=(2.0, 1.0, 0.5)), root / "v.nii")
    save(Image(vol + 1, spacing=(2.0, 1.0, 0.5)), root / "w.nii.gz")
    ds = Datastore(root)
    store = LabelStore(ds)
    for entry in ds.scan():
        store.save(entry, ds.load(entry.id), _labels((3, 4, 5), {(1, 2, 3): 1}), [_lab(1, "x")])
    out = tmp_path / "out"
    assert main(["auto", "export-labels", str(root), str(out), "--link",
                 "--channel-names", "MR"]) == 0  # fmt: skip
    img = load(out / "imagesTr" / "v_0000.nii.gz")  # .nii -> re-written as .nii.gz
    np.testing.assert_array_equal(img.array, vol)
    assert img.spacing == (2.0, 1.0, 0.5)
    linked = out / "imagesTr" / "w_0000.nii.gz"
    assert linked.is_symlink() and linked.resolve() == (root / "w.nii.gz").resolve()
    record = json.loads((out / "export.json").read_text())
    assert [r["image_file"] for r in record["cases"]] == ["written", "linked"]
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "MR"} and meta["file_ending"] == ".nii.gz"
    assert [i for i in check_dataset(read_dataset(out)) if i.level == "error"] == []


def test_export_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "store"
    ds, store, e = _store(root)
    base = ["auto", "export-labels", str(root)]
    assert main([*base, str(tmp_path / "o1")]) == 2
    assert "no image has a saved label: nothing to export" in capsys.readouterr().err
    store.save(e["a.png"], ds.load(e["a.png"].id), _labels((8, 10), {(0, 0): 1}),
               [_lab(1, "nucleus")])  # fmt: skip
    store.save(e["c.png"], ds.load(e["c.png"].id), _labels((8, 10), {(0, 0): 1}),
               [_lab(1, "cell")])  # fmt: skip
    assert main([*base, str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "label value 1 is 'nucleus' in a.png but 'cell' in c.png" in err
    assert "--names 1=nucleus" in err
    assert not (tmp_path / "o2").exists()
    assert main([*base, str(tmp_path / "o3"), "--names", "1=nucleus"]) == 0
    meta = json.loads((tmp_path / "o3" / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "nucleus": 1}
    assert main([*base, str(tmp_path / "o3"), "--names", "1=nucleus"]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert main([*base, str(tmp_path / "o4"), "--names", "2=x"]) == 2
    assert "a.png: label values [1] are not in --names" in capsys.readouterr().err
    assert main([*base, str(tmp_path / "o5"), "--names", "nucleus"]) == 2
    assert "expected VALUE=NAME" in capsys.readouterr().err
    assert main([*base, str(root / "export")]) == 2
    assert "inside the datastore" in capsys.readouterr().err


def test_init_option_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_disk_dataset(tmp_path / "ds", 2, (24, 24))
    base = ["auto", "train", str(data), "--out", str(tmp_path / "m"), "--iterations", "1"]
    assert main([*base, "--init-lr", "0.001"]) == 2
    assert "--init-lr only applies with --init" in capsys.readouterr().err
    assert main([*base, "--init", str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main([*base, "--init", str(data)]) == 2
    assert "has no plans.json (not a medseg auto model)" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_train_and_run_with_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    data = write_disk_dataset(tmp_path / "ds", 4, (24, 24))
    old = tmp_path / "old"
    assert main(["auto", "train", str(data), "--out", str(old), "--iterations", "2",
                 "--fold", "all", "--threads", "1"]) == 0  # fmt: skip
    more = write_disk_dataset(tmp_path / "more", 4, (24, 24), seed=3)
    new = tmp_path / "new"
    assert main(["auto", "train", str(more), "--out", str(new), "--iterations", "2",
                 "--init", str(old), "--threads", "1"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert f"initialised from {old} (fold_all/checkpoint_final.pt), initial lr 0.01" in out
    info = json.loads((new / "fold_0" / "init.json").read_text())
    assert info["fold"] == "fold_all" and info["initial_lr"] == 1e-2
    run = tmp_path / "run"
    assert main(["auto", "run", str(more), "--out", str(run), "--iterations", "2", "--fold",
                 "all", "--max-val-cases", "1", "--init", str(old), "--init-lr", "0.002",
                 "--threads", "1"]) == 0  # fmt: skip
    report = (run / "report" / "report.md").read_text()
    assert f"initialised from the weights of {old} (fold_all/checkpoint_final.pt)" in report
    assert json.loads((run / "fold_all" / "init.json").read_text())["initial_lr"] == 0.002
