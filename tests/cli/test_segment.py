from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import medseg.io as mio
from medseg.cli.main import main
from medseg.cli.prompt_args import parse_numbers, parse_point, parse_scribble
from medseg.errors import PromptError
from medseg.io.image import Image

LITE = ("segment", "--model", "litemedsam")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def _disc(shape, centre, radius) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_parse_numbers_and_points() -> None:
    assert parse_numbers("1,2.5,3,4", 4, "box") == (1.0, 2.5, 3.0, 4.0)
    assert parse_point("3,4") == ((3.0, 4.0), 1)
    assert parse_point("3,4,7:0") == ((3.0, 4.0, 7.0), 0)
    with pytest.raises(PromptError, match="needs 4 numbers"):
        parse_numbers("1,2,3", 4, "box")
    with pytest.raises(PromptError, match="comma-separated"):
        parse_numbers("1,a,3,4", 4, "box")
    with pytest.raises(PromptError, match="label"):
        parse_point("3,4:2")


def test_segment_png_full_path(tmp_path: Path, litemedsam, capsys) -> None:
    """No model patching: the command builds its own model (ONNX cache from the session)."""
    disc = _disc((80, 100), (40, 55), 18)
    rng = np.random.default_rng(0)
    img = np.clip(50 + 150 * disc + rng.normal(0, 5, disc.shape), 0, 255).astype(np.uint8)
    mio.save(img, tmp_path / "img.png")
    out, overlay = tmp_path / "seg", tmp_path / "ov.png"
    argv = [*LITE, str(tmp_path / "img.png"), "-o", str(out), "--box", "35,20,75,60"]
    argv += ["--overlay", str(overlay), "--backend", "onnx"]
    argv += ["--cache-dir", litemedsam.config.cache_dir]
    assert main(argv) == 0
    written = tmp_path / "seg.png"  # no extension given: the input's
    assert written.is_file() and overlay.is_file()
    lab = mio.load_label(written).array
    assert _dice(lab == 1, disc) > 0.9
    assert "object 1:" in capsys.readouterr().out
    assert mio.load(overlay).array.shape == (80, 100, 3)


def test_segment_nifti_volume_keeps_geometry(tmp_path: Path, shared_model) -> None:
    zz, yy, xx = np.mgrid[:6, :40, :40]
    obj = ((zz - 2.5) / 2.6) ** 2 + ((yy - 20) / 10) ** 2 + ((xx - 18) / 12) ** 2 <= 1
    vol = (np.random.default_rng(1).normal(0, 0.1, obj.shape) + obj).astype(np.float32)
    img = Image(vol, spacing=(2.5, 0.8, 0.9), origin=(-10.0, 20.0, 30.0))
    mio.save(img, tmp_path / "vol.nii.gz")
    out = tmp_path / "mask.nii.gz"
    argv = [*LITE, str(tmp_path / "vol.nii.gz"), "-o", str(out)]
    assert main([*argv, "--box3d", "6,10,2,30,30,3", "--overlay", str(tmp_path / "o.png")]) == 0
    lab = mio.load_label(out)
    assert lab.shape == vol.shape and lab.same_geometry(mio.load(tmp_path / "vol.nii.gz"))
    assert lab.array[[0, 1, 4, 5]].max() == 0  # box3d limits the slices
    assert _dice(lab.array[2:4] == 1, obj[2:4]) > 0.8
    assert (tmp_path / "o.png").is_file()


@pytest.mark.slow
def test_segment_propagation_rule(tmp_path: Path, shared_model, monkeypatch) -> None:
    """``--propagation slices`` encodes every slice it visits, keyframes (the default) fewer;
    both follow the object through the volume."""
    zz, yy, xx = np.mgrid[:16, :40, :40]
    obj = ((zz - 7.5) / 7.0) ** 2 + ((yy - 20) / 10) ** 2 + ((xx - 18) / 12) ** 2 <= 1
    vol = (np.random.default_rng(2).normal(0, 0.1, obj.shape) + obj).astype(np.float32)
    mio.save(Image(vol, spacing=(1.0, 1.0, 1.0)), tmp_path / "vol.nii.gz")
    calls = []
    real = shared_model.encode
    monkeypatch.setattr(shared_model, "encode", lambda *a, **k: calls.append(1) or real(*a, **k))
    encodes, masks = {}, {}
    for rule in ("slices", "keyframes"):
        out = tmp_path / f"{rule}.nii.gz"
        calls.clear()
        argv = [*LITE, str(tmp_path / "vol.nii.gz"), "-o", str(out), "--box", "6,10,30,30"]
        assert main([*argv, "--slice", "8", "--propagation", rule]) == 0
        encodes[rule], masks[rule] = len(calls), mio.load_label(out).array == 1
    assert encodes["keyframes"] < encodes["slices"]
    assert encodes["slices"] >= int(masks["slices"].any(axis=(1, 2)).sum())
    for rule, mask in masks.items():
        assert _dice(mask, obj) > 0.8, rule
    with pytest.raises(SystemExit):
        main([*LITE, str(tmp_path / "vol.nii.gz"), "--propagation", "every"])


def test_segment_errors(tmp_path: Path, shared_model, capsys) -> None:
    vol = np.zeros((5, 20, 20), np.float32)
    mio.save(Image(vol), tmp_path / "v.nii.gz")
    src = str(tmp_path / "v.nii.gz")
    out = str(tmp_path / "o.nii.gz")
    assert main([*LITE, src, "-o", out]) == 2
    assert "give at least one prompt" in capsys.readouterr().err
    assert main([*LITE, src, "-o", out, "--box", "1,1,5,5"]) == 2
    err = capsys.readouterr().err
    assert "give --slice Z" in err and "--box3d" in err and "slice_index" not in err
    assert main([*LITE, src, "-o", out, "--point", "1,1,2", "--point", "3,3,3"]) == 2
    assert "one slice" in capsys.readouterr().err
    assert main([*LITE, src, "-o", str(tmp_path / "o.dcm"), "--box3d", "1,1,0,5,5,1"]) == 2
    assert "DICOM-SEG" in capsys.readouterr().err
    assert main([*LITE, str(tmp_path / "nope.png"), "-o", out, "--box", "1,1,5,5"]) == 2


def _first_case(manifest: dict, dataset: str) -> dict:
    return next(d for d in manifest["datasets"] if d["name"] == dataset)["cases"][0]


def test_segment_real_png(shared_data: Path, manifest: dict, tmp_path: Path, shared_model) -> None:
    case = _first_case(manifest, "cxr_lung_demo")
    truth = mio.load_label(shared_data / case["label"]).array == 1
    cols = np.flatnonzero(truth.any(axis=0))
    half = truth[:, : (cols[0] + cols[-1]) // 2]  # the lung on the image's left
    rows, cs = np.flatnonzero(half.any(axis=1)), np.flatnonzero(half.any(axis=0))
    box = f"{cs[0]},{rows[0]},{cs[-1]},{rows[-1]}"
    out = tmp_path / "lung.png"
    assert main([*LITE, str(shared_data / case["images"][0]), "-o", str(out), "--box", box]) == 0
    pred = mio.load_label(out).array == 1
    gt = np.zeros_like(truth)
    gt[:, : half.shape[1]] = half
    assert _dice(pred, gt) > 0.8


@pytest.mark.slow  # a real 20-slice CT series (~3 s); fast loop: the NIfTI volume test
def test_segment_real_dicom_series(shared_data: Path, tmp_path: Path, shared_model) -> None:
    series = shared_data / "totalseg_ref" / "dicom" / "example_ct_dicom"
    image = mio.load(series)
    assert image.modality == "CT" and image.shape[0] == 20
    out = tmp_path / "seg.nii.gz"
    # a box around the vertebral body region in the middle of two slices
    argv = [*LITE, str(series), "-o", str(out), "--box3d", "180,180,9,330,330,10"]
    assert main(argv) == 0
    lab = mio.load_label(out)
    assert lab.shape == image.shape and lab.same_geometry(image)
    assert lab.array[9:11].any() and not lab.array[:9].any() and not lab.array[11:].any()


def test_dcm_output_writes_dicom_seg(tmp_path: Path, shared_model, monkeypatch) -> None:
    """``-o x.dcm`` on a DICOM input hands the label map and the source to save_dicom_seg."""
    import pydicom
    from pydicom.data import get_testdata_file

    src = Path(get_testdata_file("CT_small.dcm"))
    calls = []

    def fake_save(labels, source, path):
        calls.append((labels.shape, Path(source), Path(path)))
        return Path(path)

    monkeypatch.setattr(mio, "save_dicom_seg", fake_save)
    out = tmp_path / "seg.dcm"
    assert main([*LITE, str(src), "-o", str(out), "--box", "45,40,72,63"]) == 0
    rows = int(pydicom.dcmread(src).Rows)
    assert calls == [((rows, rows), src, out)]
    # no extension on a DICOM input: DICOM-SEG as well (the input's own format)
    assert main([*LITE, str(src), "-o", str(tmp_path / "seg2"), "--box", "45,40,72,63"]) == 0
    assert calls[-1] == ((rows, rows), src, tmp_path / "seg2.dcm")


def test_parse_scribble() -> None:
    assert parse_scribble("1,2;3,4:0") == {"points": [(1.0, 2.0), (3.0, 4.0)], "label": 0}
    assert parse_scribble("1,2 3,4") == {"points": [(1.0, 2.0), (3.0, 4.0)], "label": 1}
    with pytest.raises(PromptError, match="no points"):
        parse_scribble(":1")
    with pytest.raises(PromptError, match="label"):
        parse_scribble("1,2:5")
    with pytest.raises(PromptError, match="needs 2 numbers"):
        parse_scribble("1,2,3;4,5")


def test_default_model_takes_clicks_and_scribbles(
    tmp_path: Path, capsys, shared_default_model
) -> None:
    """Without --model the command uses ``default`` (medseg-interactive, bundled weights;
    the session's instance, ``shared_default_model``)."""
    disc = _disc((80, 100), (40, 55), 14)
    img = np.where(disc, 200, 40).astype(np.uint8)
    mio.save(img, tmp_path / "img.png")
    out = tmp_path / "seg.png"
    argv = ["segment", str(tmp_path / "img.png"), "-o", str(out)]
    assert main([*argv, "--scribble", "48,40;62,40:1", "--scribble", "3,3;3,70:0"]) == 0
    assert _dice(mio.load_label(out).array == 1, disc) > 0.7
    strokes = np.zeros((80, 100), np.uint8)
    strokes[40, 48:62], strokes[5, 5:90] = 1, 2
    mio.save(strokes, tmp_path / "strokes.png")
    assert main([*argv, "--scribble-mask", str(tmp_path / "strokes.png"), "--point", "55,40"]) == 0
    assert _dice(mio.load_label(out).array == 1, disc) > 0.7
    mio.save(strokes[:40], tmp_path / "small.png")
    assert main([*argv, "--scribble-mask", str(tmp_path / "small.png")]) == 2
    assert "scribble mask has shape (40, 100)" in capsys.readouterr().err
    assert main([*argv, "--scribble", "500,3;3,3"]) == 2
    assert "outside the image" in capsys.readouterr().err


def test_scribbles_on_a_volume_need_a_slice(tmp_path: Path, capsys) -> None:
    mio.save(Image(np.zeros((5, 20, 20), np.float32)), tmp_path / "v.nii.gz")
    argv = ["segment", str(tmp_path / "v.nii.gz"), "-o", str(tmp_path / "o.nii.gz")]
    assert main([*argv, "--scribble", "3,3;8,8"]) == 2
    assert "need --slice" in capsys.readouterr().err
