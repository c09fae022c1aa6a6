"""A trained ``medseg auto`` model as the first mask: ``Predictor(MODEL_DIR)``, corrections
with prompts, ``medseg segment --model MODEL_DIR`` and bad model folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import auto_model_helpers as helpers  # tests/_support (pytest's pythonpath)
import numpy as np
import pytest

import medseg
from medseg.automatic.segmenter import AutoSegmenter, model_folder
from medseg.cli.main import main
from medseg.errors import InputError, ModelError, PromptError
from medseg.io import load, load_label
from medseg.io.image import Image
from medseg.models.registry import create_model
from medseg.training.synthetic import write_disk_dataset

# Predictor(MODEL_DIR) and medseg segment --model MODEL_DIR reuse the session's default model
pytestmark = pytest.mark.usefixtures("shared_default_model")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model folder, dataset) of a 2-class 2D model trained for 80 iterations."""
    root = tmp_path_factory.mktemp("auto2d")
    data = helpers.write_two_class_dataset(root / "ds")
    return helpers.train_tiny_model(data, root / "model", iterations=80), data


@pytest.fixture(scope="module")
def trained_3d(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model folder, dataset) of balls in NIfTI volumes with 3 mm slices (a 2d plan),
    trained for 200 iterations (~2 s): Dice 0.98 on the test ball (60 iterations: 0.54)."""
    root = tmp_path_factory.mktemp("auto3d")
    data = write_disk_dataset(root / "ds", 4, (12, 24, 24), spacing=(3.0, 1.0, 1.0), n_test=1)
    return helpers.train_tiny_model(data, root / "model", iterations=200), data


@pytest.fixture(scope="module")
def predictor(trained: tuple[Path, Path]) -> medseg.Predictor:
    return medseg.Predictor(trained[0])


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float(np.logical_and(a, b).sum()) / max(1, int(a.sum() + b.sum()))


def _centre(mask: np.ndarray) -> tuple[int, int]:
    ys, xs = np.nonzero(mask)
    return round(float(xs.mean())), round(float(ys.mean()))  # (x, y)


def test_model_folder_is_given_to_the_predictor(trained: tuple[Path, Path]) -> None:
    p = medseg.Predictor(trained[0])
    assert isinstance(p.auto, AutoSegmenter) and p.model.name == "litemedsam+interactive"
    assert p.auto.label_names == {1: "disk", 2: "square"} and p.auto.default_label == 1
    assert p.auto.info()["labels"] == {"1": "disk", "2": "square"}
    q = medseg.Predictor("litemedsam+interactive", auto=str(trained[0]), tta=True)
    assert q.model.name == "litemedsam+interactive" and q.auto.model.cfg.tta
    with pytest.raises(ModelError, match=r"given to medseg\.Predictor"):
        create_model(str(trained[0]))
    with pytest.raises(ModelError, match="as model= or as auto=, not both"):
        medseg.Predictor(trained[0], auto=trained[0])
    assert model_folder("litemedsam") is None and model_folder("runs/x") == Path("runs/x")


def test_no_prompt_gives_the_automatic_masks(predictor: medseg.Predictor) -> None:
    image, truth = helpers.two_class_case(np.random.default_rng(42))
    predictor.set_image(image)
    labels = predictor.segment_all()
    assert labels.shape == image.shape
    assert labels.label_names == {0: "background", 1: "disk", 2: "square"}
    for k in (1, 2):
        assert _dice(labels.array == k, truth == k) > 0.7, k
    first = predictor.predict()
    assert first.info["label"] == 1 and first.info["label_name"] == "disk" and first.info["auto"]
    assert np.array_equal(first.mask, labels.array == 1) and np.isnan(first.score)
    assert np.array_equal(first.labels, first.mask.astype(np.uint8))
    square = predictor.predict(label=2)
    assert np.array_equal(square.mask, labels.array == 2)
    misses = predictor.cache_info().misses
    predictor.set_image(image)  # the automatic model runs once per image
    assert predictor.cache_info().misses == misses and predictor.segment_all() is labels


def test_prompts_correct_the_automatic_mask(predictor: medseg.Predictor) -> None:
    image, _ = helpers.two_class_case(np.random.default_rng(43))
    predictor.set_image(image)
    labels = predictor.segment_all().array
    cx, cy = _centre(labels == 1)
    removed = predictor.predict(points=[(cx, cy)], point_labels=[0], label=1)
    assert labels[cy, cx] == 1 and not removed.mask[cy, cx]
    assert removed.info["label"] == 1 and not (removed.mask & (labels == 2)).any()
    sx, sy = _centre(labels == 2)
    grown = predictor.predict(label=1, points=[(sx, sy)], point_labels=[1])
    assert grown.mask[sy, sx] and grown.mask[cy, cx]  # the disk is kept, the click added
    explicit = predictor.predict(points=[(cx, cy)], point_labels=[0], mask_input=labels == 1)
    assert np.array_equal(explicit.mask, removed.mask)  # label=K is the same as its mask
    new = predictor.predict(points=[(sx, sy)], point_labels=[1])  # no label: a new object
    assert "label" not in new.info and new.mask[sy, sx] and not new.mask[cy, cx]


def test_volume_corrections_change_only_their_slice(trained_3d: tuple[Path, Path]) -> None:
    model_dir, data = trained_3d
    image = load(data / "imagesTs" / "case04_0000.nii.gz")
    p = medseg.Predictor(model_dir)
    p.set_image(image)
    labels = p.segment_all()
    assert labels.shape == image.shape and labels.spacing == image.spacing
    truth = image.array > 110
    assert _dice(labels.array == 1, truth) > 0.95  # 0.984 (seeded, one thread)
    first = p.predict()
    assert first.slice_ranges and first.mask.shape == image.shape
    z = first.slice_ranges[0][0] + (first.slice_ranges[0][1] - first.slice_ranges[0][0]) // 2
    cx, cy = _centre(labels.array[z] == 1)
    fixed = p.predict(points=[(cx, cy)], point_labels=[0], slice_index=z, label=1)
    assert not fixed.mask[z, cy, cx] and fixed.info["start_slice"] == z
    others = [i for i in range(image.shape[0]) if i != z]
    assert np.array_equal(fixed.mask[others], labels.array[others] == 1)
    with pytest.raises(PromptError, match="give slice_index"):
        p.predict(points=[(cx, cy)], label=1)


def test_bad_labels_and_prompts(predictor: medseg.Predictor) -> None:
    predictor.set_image(helpers.two_class_case(np.random.default_rng(44))[0])
    with pytest.raises(PromptError, match=r"label 3 is not a class.*1 \(disk\), 2 \(square\)"):
        predictor.predict(label=3)
    with pytest.raises(PromptError, match="one class and slice at a time"):
        predictor.predict(boxes=[(1, 1, 9, 9), (20, 20, 30, 30)], label=1)
    with pytest.raises(PromptError, match="slice_index needs a 3D image"):
        predictor.predict(points=[(5, 5)], slice_index=0, label=1)
    before = predictor.predict().mask
    with pytest.raises(InputError, match="planned for 2D images"):
        predictor.set_image(np.zeros((4, 16, 16), np.float32))
    assert np.array_equal(predictor.predict().mask, before)  # the previous image stays
    plain = medseg.Predictor("medseg-interactive")
    plain.set_image(np.zeros((16, 16), np.uint8))
    with pytest.raises(PromptError, match="label= picks a class of a medseg auto model"):
        plain.predict(points=[(5, 5)], label=1)
    with pytest.raises(ModelError, match="segment_all"):
        plain.segment_all()


def test_bad_model_folders(trained: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such model folder"):
        medseg.Predictor(tmp_path / "missing")
    with pytest.raises(ModelError, match=r"no plans\.json"):
        medseg.Predictor(tmp_path)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ModelError, match="not a folder"):
        medseg.Predictor(str(tmp_path / "a_file"))
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    shutil.copy(trained[0] / "plans.json", untrained / "plans.json")
    with pytest.raises(ModelError, match=r"no fold_\*/checkpoint_final.pt"):
        medseg.Predictor(untrained)
    (untrained / "fold_0").mkdir()
    (untrained / "fold_0" / "checkpoint_final.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot load a checkpoint"):
        medseg.Predictor(untrained)
    (untrained / "plans.json").write_text("{")
    with pytest.raises(ModelError, match="not a valid medseg plan"):
        medseg.Predictor(untrained)
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        create_model("nope")


def test_segment_cli_label_map_and_corrections(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model_dir, data = trained
    src = data / "imagesTs" / "case06_0000.png"
    assert (
        main(["segment", str(src), "-o", str(tmp_path / "all.png"), "--model", str(model_dir)]) == 0
    )
    out = capsys.readouterr().out
    assert "label 1 (disk):" in out and "label 2 (square):" in out
    # one line per foreground class, never one for background (label 0)
    lines = [line for line in out.splitlines() if line.startswith("label ")]
    assert [line.split(":")[0] for line in lines] == ["label 1 (disk)", "label 2 (square)"]
    assert "background" not in out and "label 0" not in out
    p = medseg.Predictor(model_dir)
    p.set_image(load(src))
    expected = p.segment_all().array
    written = load_label(tmp_path / "all.png")
    assert written.shape == expected.shape and np.array_equal(written.array, expected)
    args = ["segment", str(src), "--model", str(model_dir), "--label", "2"]
    assert main([*args, "-o", str(tmp_path / "square.png")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("label ")]
    assert [line.split(":")[0] for line in lines] == ["label 2 (square)"]
    square = load_label(tmp_path / "square.png").array
    assert set(np.unique(square)) == {0, 2} and np.array_equal(square == 2, expected == 2)
    sx, sy = _centre(expected == 2)
    corrected = tmp_path / "fixed.png"
    assert main([*args, "-o", str(corrected), "--point", f"{sx},{sy}:0"]) == 0
    fixed = load_label(corrected).array
    assert expected[sy, sx] == 2 and fixed[sy, sx] == 0 and set(np.unique(fixed)) <= {0, 2}
    assert (fixed == 2).any()  # the rest of the square stays


def test_segment_cli_volume_keeps_geometry(
    trained_3d: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model_dir, data = trained_3d
    src = data / "imagesTs" / "case04_0000.nii.gz"
    image = load(src)
    moved = Image(image.array, spacing=image.spacing, origin=(5.0, -3.0, 2.0))
    medseg.save(moved, tmp_path / "moved.nii.gz")
    args = ["segment", str(tmp_path / "moved.nii.gz"), "-o", str(tmp_path / "seg"), "--model"]
    assert main([*args, str(model_dir), "--overlay", str(tmp_path / "o.png")]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and (tmp_path / "o.png").is_file()
    assert "label 0" not in out and "background" not in out
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("label ")] == [
        "label 1 (disk)"
    ]
    seg = load_label(tmp_path / "seg.nii.gz")
    assert seg.shape == image.shape and np.allclose(seg.spacing, image.spacing)
    assert np.allclose(seg.origin, (5.0, -3.0, 2.0)) and (seg.array == 1).any()


def test_segment_cli_errors(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    src = str(trained[1] / "imagesTs" / "case06_0000.png")
    out = str(tmp_path / "x.png")
    assert main(["segment", src, "-o", out, "--model", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no plans.json" in err and len(err.splitlines()) == 1
    assert main(["segment", src, "-o", out, "--model", str(tmp_path / "nope")]) == 2
    assert "no such model folder" in capsys.readouterr().err
    assert main(["segment", src, "-o", out]) == 2
    assert "give at least one prompt" in capsys.readouterr().err
    assert main(["segment", src, "-o", out, "--label", "1", "--point", "3,3"]) == 2
    err = capsys.readouterr().err
    assert "--label 1 picks a class" in err and "--label-value 1" in err
    assert main(["segment", src, "-o", out, "--model", str(trained[0]), "--label", "7"]) == 2
    assert "label 7 is not a class" in capsys.readouterr().err
