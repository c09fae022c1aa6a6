"""``medseg segment`` output label values (--label-value, --one-label), units and the
wording of its errors; ``Prediction.to_label_map(values=...)``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import medseg.io as mio
from medseg.cli.main import main
from medseg.cli.segment_output import cli_prompt_message, relabel, size_text
from medseg.errors import InputError, PromptError
from medseg.inference.result import Prediction
from medseg.io.image import Image, LabelMap

LITE = ("segment", "--model", "litemedsam")


def _prediction() -> Prediction:
    """Two objects on a (3, 4) image; they overlap at (0, 1), where object 2 has the
    higher logit."""
    masks = np.zeros((2, 3, 4), bool)
    masks[0, 0, :2] = True
    masks[1, 0, 1:3] = True
    logits = np.where(masks, 1.0, -1.0).astype(np.float32)
    logits[1, 0, 1] = 5.0
    labels = np.array([[1, 2, 2, 0], [0, 0, 0, 0], [0, 0, 0, 0]], np.uint8)
    return Prediction(masks, logits, np.array([0.9, 0.8], np.float32), labels, Image(labels))


def test_to_label_map_values() -> None:
    p = _prediction()
    assert p.to_label_map().array.tolist() == p.labels.tolist()
    one = p.to_label_map(values=7).array
    assert one.dtype == np.uint8 and one[0].tolist() == [7, 7, 7, 0] and one[1:].max() == 0
    per = p.to_label_map(values=[2, 300]).array
    assert per.dtype == np.uint16 and per[0].tolist() == [2, 300, 300, 0]
    assert p.to_label_map(values=(5, 5)).array[0].tolist() == [5, 5, 5, 0]
    with pytest.raises(InputError, match="3 label values for 2 object"):
        p.to_label_map(values=[1, 2, 3])
    for bad in (0, 70000, True, 1.5):
        with pytest.raises(InputError, match="from 1 to 65535"):
            p.to_label_map(values=bad)


def test_relabel_auto_classes() -> None:
    arr = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    labels = LabelMap(arr, label_names={0: "background", 1: "liver", 2: "kidney"})
    merged = relabel(labels, 1)
    assert merged.array.tolist() == [[0, 1, 1], [1, 1, 0]]
    assert merged.label_names == {1: "liver+kidney"}
    swapped = relabel(labels, [4, 3])
    assert swapped.array.tolist() == [[0, 4, 3], [3, 4, 0]]
    assert swapped.label_names == {4: "liver", 3: "kidney"}
    assert relabel(labels, None) is labels
    with pytest.raises(PromptError, match="3 values for 2 classes"):
        relabel(labels, [1, 2, 3])


def test_size_text_units(tmp_path: Path) -> None:
    mio.save(np.zeros((4, 5), np.uint8), tmp_path / "a.png")
    assert size_text(12, mio.load(tmp_path / "a.png")) == "12 pixels"
    mio.save(Image(np.zeros((4, 5), np.float32), spacing=(2.0, 0.5)), tmp_path / "a.nii.gz")
    assert size_text(12, mio.load(tmp_path / "a.nii.gz")) == "12 pixels, 12.0 mm^2"
    vol = mio.load(tmp_path / "a.nii.gz")
    assert size_text(3, Image(np.zeros((2, 4, 5)), spacing=(2, 1, 1))) == "3 voxels, 6.0 mm^3"
    assert vol.meta["format"] == "nifti"


def test_cli_prompt_message_names_options() -> None:
    assert (
        cli_prompt_message("this image is 3D: give slice_index=z with the 2D prompt, or box3d=")
        == "this image is 3D: give --slice Z with the 2D prompt, or --box3d"
    )
    assert cli_prompt_message("give either box3d= or box=/boxes= with slice_index, not both") == (
        "give either --box3d or --box with --slice, not both"
    )


def _two_discs(tmp_path: Path) -> Path:
    yy, xx = np.mgrid[:80, :120]
    discs = ((yy - 40) ** 2 + (xx - 30) ** 2 <= 15**2) | ((yy - 40) ** 2 + (xx - 90) ** 2 <= 15**2)
    mio.save(np.where(discs, 200, 40).astype(np.uint8), tmp_path / "img.png")
    return tmp_path / "img.png"


def test_segment_label_values(tmp_path: Path, shared_model, capsys) -> None:
    src = _two_discs(tmp_path)
    out = tmp_path / "seg.png"
    argv = [*LITE, str(src), "-o", str(out), "--box", "12,22,48,58", "--box", "72,22,108,58"]
    assert main(argv) == 0
    default = mio.load_label(out).array
    assert set(np.unique(default)) == {0, 1, 2}
    lines = capsys.readouterr().out
    assert "object 2: label 2, " in lines and " pixels, score" in lines and "mm^" not in lines
    assert main([*argv, "--label-value", "2"]) == 0
    assert set(np.unique(mio.load_label(out).array)) == {0, 2}
    assert np.array_equal(mio.load_label(out).array > 0, default > 0)
    assert main([*argv, "--one-label"]) == 0
    assert np.array_equal(mio.load_label(out).array, (default > 0).astype(np.uint8))
    assert main([*argv, "--label-value", "5,3"]) == 0
    per = mio.load_label(out).array
    assert np.array_equal(per == 5, default == 1) and np.array_equal(per == 3, default == 2)
    capsys.readouterr()
    assert main([*argv, "--label-value", "1,2,3"]) == 2
    assert "3 values for 2 object(s)" in capsys.readouterr().err
    assert main([*argv, "--label", "2"]) == 2
    err = capsys.readouterr().err
    assert "--model MODEL_DIR" in err and "use --label-value 2" in err
    assert main([*argv, "--one-label", "--label-value", "2"]) == 2
    with pytest.raises(SystemExit):
        main([*argv, "--label-value", "0"])


def test_segment_help_says_which_values(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["segment", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "object i (the i-th --box, in the order given) as value i" in text
    assert "--label-value K[,K2,...]" in text and "--one-label" in text
