"""``medseg classify train|predict|evaluate`` on tiny hand-built data sets (seconds)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medseg.cli.commands import classify as cmd
from medseg.cli.main import main

SIZE = 16


def _images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``(n, 16, 16)`` noise; label 1 has a bright square in the middle."""
    labels = np.arange(n) % 2
    images = rng.integers(0, 80, (n, SIZE, SIZE)).astype(np.uint8)
    images[labels == 1, 4:12, 4:12] = 230
    return images, labels


def _npz(path: Path, shape3d: bool = False) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 24), ("val", 8), ("test", 8)):
        images, labels = _images(n, rng)
        if shape3d:
            images = np.repeat(images[:, None], SIZE, 1)  # (n, Z, Y, X)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels[:, None]
    np.savez(path, **arrays)
    return path


def _folder(root: Path, n: int = 10) -> Path:
    images, labels = _images(2 * n, np.random.default_rng(1))
    for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
        d = root / ("lesion" if lab else "normal")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"img{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model folder, npz) of a ResNet-18 trained for one epoch."""
    root = tmp_path_factory.mktemp("classify")
    data = _npz(root / "tiny.npz")
    out = root / "model"
    args = ["classify", "train", str(data), "--out", str(out), "--model", "resnet18"]
    args += ["--time-budget", "20s", "--epochs", "1", "--threads", "1", "--no-progress"]
    assert main(args) == 0
    return out, data


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_cli_constants_match_the_library() -> None:
    from medseg.classify.corrupt import SEVERITIES
    from medseg.classify.data import SPLITS, TASKS
    from medseg.classify.losses import LOSSES
    from medseg.classify.networks import NETWORKS

    assert ("auto", *NETWORKS) == cmd.MODELS
    assert (cmd.TASKS, cmd.SPLITS, cmd.SEVERITIES) == (TASKS, SPLITS, SEVERITIES)
    assert cmd.LOSSES == LOSSES


def test_train_writes_model_and_metrics(trained: tuple[Path, Path]) -> None:
    out, _ = trained
    assert (out / "classifier.json").is_file() and (out / "weights.pt").is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["split"] == "test" and report["model"] == "resnet18"
    assert 0.0 <= report["auc"] <= 1.0 and 0.0 <= report["acc"] <= 1.0
    assert report["epochs"] == 1 and report["test"]["n"] == 8


def test_predict_folder_csv_and_gradcam(trained: tuple[Path, Path], tmp_path: Path) -> None:
    out, _ = trained
    folder = _folder(tmp_path / "imgs", n=3)
    csv_path, cams = tmp_path / "pred.csv", tmp_path / "cams"
    args = ["classify", "predict", str(out), str(folder), "--csv", str(csv_path)]
    assert main([*args, "--gradcam", str(cams), "--gradcam-n", "2", "--no-progress"]) == 0
    rows = _rows(csv_path)
    assert len(rows) == 6 and list(rows[0]) == ["path", "class", "p_0", "p_1", "gradcam"]
    for r in rows:
        assert r["class"] in ("0", "1")
        assert float(r["p_0"]) + float(r["p_1"]) == pytest.approx(1.0, abs=1e-5)
    assert [bool(r["gradcam"]) for r in rows] == [True, True] + [False] * 4
    assert Path(rows[0]["gradcam"]).is_file() and len(list(cams.glob("*.png"))) == 2


def test_predict_to_stdout(trained: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    out, _ = trained
    png = tmp_path / "one.png"
    Image.fromarray(np.full((20, 20), 200, np.uint8)).save(png)
    assert main(["classify", "predict", str(out), str(png), "--no-progress"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "path,class,p_0,p_1" and lines[1].startswith(str(png))


def test_evaluate_corrupt_json_plots(trained: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    out, data = trained
    js, plots = tmp_path / "m.json", tmp_path / "plots"
    args = ["classify", "evaluate", str(out), str(data), "--corrupt", "--severities", "3"]
    assert main([*args, "--bootstrap", "20", "--json", str(js), "--plots", str(plots)]) == 0
    text = capsys.readouterr().out
    assert "AUC" in text and "95% CI" in text and "gaussian_noise (s3)" in text
    rep = json.loads(js.read_text())
    assert {"auc", "acc", "auc_ci95", "confusion", "corruptions"} <= set(rep)
    assert rep["split"] == "test" and rep["n"] == 8
    assert len(rep["corruptions"]) == 6 and all(
        set(v) == {"3"} for v in rep["corruptions"].values()
    )
    assert (plots / "calibration.png").is_file() and (plots / "corruptions.png").is_file()


def test_train_and_evaluate_class_folder(tmp_path: Path, capsys) -> None:
    folder = _folder(tmp_path / "data")
    out = tmp_path / "m"
    args = ["classify", "train", str(folder), "--out", str(out), "--baseline", "--size", "16"]
    assert main([*args, "--epochs", "1", "--threads", "1", "--no-progress", "--no-test"]) == 0
    cfg = json.loads((out / "classifier.json").read_text())
    assert cfg["classes"] == ["lesion", "normal"] and cfg["data_size"] == 16
    assert json.loads((out / "report.json").read_text())["split"] == "val"
    capsys.readouterr()
    assert main(["classify", "evaluate", str(out), str(folder), "--bootstrap", "0"]) == 0
    assert "n=4" in capsys.readouterr().out  # 20 % of 2 x 10 images


def _fails(args: list[str], capsys) -> str:
    """Return code 2 from a MedsegError, or argparse's usage error; the message line."""
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    return capsys.readouterr().err


def test_bad_arguments(tmp_path: Path, capsys) -> None:
    data = str(_npz(tmp_path / "d.npz"))
    base = ["classify", "train", data, "--out", str(tmp_path / "m")]
    assert "invalid choice: 'vit'" in _fails([*base, "--model", "vit"], capsys)
    assert "invalid duration 'soon'" in _fails([*base, "--time-budget", "soon"], capsys)
    assert "expected a number >= 1" in _fails([*base, "--epochs", "0"], capsys)
    missing = str(tmp_path / "nope.npz")
    assert f"data not found: {missing}" in _fails(
        ["classify", "train", missing, "--out", "x"], capsys
    )
    err = _fails([*base, "--task", "nonsense"], capsys)
    assert "invalid choice: 'nonsense'" in err


def test_wrong_model_for_dims(tmp_path: Path, capsys) -> None:
    vol = str(_npz(tmp_path / "v.npz", shape3d=True))
    args = ["classify", "train", vol, "--out", str(tmp_path / "m"), "--model", "efficientnet-lite0"]
    assert "model 'efficientnet-lite0' does not take 3D images" in _fails(args, capsys)


def test_bad_predict_and_evaluate_inputs(trained: tuple[Path, Path], tmp_path: Path, capsys):
    out, _ = trained
    err = _fails(["classify", "predict", str(tmp_path), "x.png"], capsys)
    assert "is not a classifier folder" in err
    assert "image not found: nothing.png" in _fails(
        ["classify", "predict", str(out), "nothing.png"], capsys
    )
    vol = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(np.random.rand(8, 8, 8).astype(np.float32), np.eye(4)), vol)
    err = _fails(["classify", "predict", str(out), str(vol), "--no-progress"], capsys)
    assert f"{vol} is a 3D image but the model 'resnet18' was trained on 2D images" in err
    vol_npz = str(_npz(tmp_path / "v.npz", shape3d=True))
    err = _fails(["classify", "evaluate", str(out), vol_npz, "--bootstrap", "0"], capsys)
    assert "3D images but the model 'resnet18' was trained on 2D images" in err
    (tmp_path / "empty").mkdir()
    err = _fails(["classify", "predict", str(out), str(tmp_path / "empty")], capsys)
    assert "folder holds no image files" in err


def test_3d_train_and_predict_nifti(tmp_path: Path) -> None:
    vol = str(_npz(tmp_path / "v.npz", shape3d=True))
    out = tmp_path / "m3"
    args = ["classify", "train", vol, "--out", str(out), "--epochs", "1", "--no-progress"]
    assert main([*args, "--threads", "1", "--batch-size", "8"]) == 0
    assert json.loads((out / "classifier.json").read_text())["model"] == "cnn3d"
    nii = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(np.random.rand(12, 12, 12).astype(np.float32), np.eye(4)), nii)
    csv_path = tmp_path / "p.csv"
    args = ["classify", "predict", str(out), str(nii), "--csv", str(csv_path), "--no-progress"]
    assert main([*args, "--gradcam", str(tmp_path / "cams")]) == 0
    (row,) = _rows(csv_path)
    assert row["path"] == str(nii) and Path(row["gradcam"]).is_file()


class _FakeEncoder:
    """Plane (16, 16[, 3]) -> (256, 8, 8): channel c = 2 x 2 block means times (c + 1)."""

    identity = "fake-cli-encoder"

    def __call__(self, plane: np.ndarray) -> np.ndarray:
        p = np.asarray(plane, np.float32)
        p = p.mean(-1) if p.ndim == 3 else p
        blocks = p.reshape(8, 2, 8, 2).mean((1, 3))
        return blocks[None] * np.arange(1, 257, dtype=np.float32)[:, None, None]


def test_tinyvit_train_predict_evaluate(tmp_path: Path, monkeypatch, capsys) -> None:
    from medseg.classify import feature_head

    monkeypatch.setattr(feature_head, "_encoder", _FakeEncoder())
    monkeypatch.setenv(feature_head.CACHE_ENV, str(tmp_path / "features"))
    data, out = _npz(tmp_path / "tiny.npz"), tmp_path / "m"
    args = ["classify", "train", str(data), "--out", str(out), "--model", "tinyvit"]
    assert main([*args, "--epochs", "2", "--no-progress", "--feature-augment", "1"]) == 0
    assert capsys.readouterr().out.startswith("tinyvit: 2 epoch(s)")
    assert json.loads((out / "report.json").read_text())["options"]["feature_augment_copies"] == 1
    cfg = json.loads((out / "classifier.json").read_text())
    assert (cfg["model"], cfg["feature_pool"], cfg["feature_dim"]) == ("tinyvit", "gap", 256)
    report = json.loads((out / "report.json").read_text())
    assert (report["auc"], report["acc"]) == (1.0, 1.0)
    folder, cams = _folder(tmp_path / "imgs", n=2), tmp_path / "cams"
    csv_path = tmp_path / "p.csv"
    pred = ["classify", "predict", str(out), str(folder), "--csv", str(csv_path), "--no-progress"]
    assert main([*pred, "--gradcam", str(cams), "--gradcam-n", "2"]) == 0
    rows = _rows(csv_path)
    assert [r["class"] for r in rows] == ["1", "1", "0", "0"]  # lesion/ then normal/
    assert len(list(cams.glob("*.png"))) == 2
    js = tmp_path / "e.json"
    ev = ["classify", "evaluate", str(out), str(data), "--corrupt", "--severities", "3"]
    assert main([*ev, "--bootstrap", "0", "--json", str(js)]) == 0
    rep = json.loads(js.read_text())
    assert rep["model"] == "tinyvit" and rep["auc"] == 1.0 and len(rep["corruptions"]) == 6


def test_train_ordinal_loss_is_recorded(tmp_path: Path, capsys) -> None:
    data, out = _npz(tmp_path / "tiny.npz"), tmp_path / "m"
    args = ["classify", "train", str(data), "--out", str(out), "--model", "resnet18"]
    args += ["--epochs", "1", "--threads", "1", "--no-progress", "--no-test"]
    assert main([*args, "--task", "ordinal", "--loss", "ordinal"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert (report["split"], report["options"]["loss"]) == ("val", "ordinal")
    with pytest.raises(SystemExit):
        main([*args, "--loss", "focal"])
    assert "invalid choice: 'focal'" in capsys.readouterr().err
