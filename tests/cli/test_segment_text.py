"""``medseg segment --text`` / ``--list-targets``: the CLI door of text prompts, with a
scripted text head (exact masks); the trained head is measured by ``medseg bench text``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import medseg.io as mio
from medseg.cli.main import main
from medseg.cli.segment_output import text_prompts
from medseg.errors import PromptError
from medseg.models.base import Decoded

H, W = 64, 96
YY, XX = np.mgrid[:H, :W]
LOW_X = (YY - 32) ** 2 + (XX - 24) ** 2 < 64  # the image's left half: the patient's right
HIGH_X = (YY - 32) ** 2 + (XX - 72) ** 2 < 64
BODY = (YY - 32) ** 2 / 30**2 + (XX - 47.5) ** 2 / 46**2 < 1


class Head:
    """Scripted text head: both kidneys for "kidney" (presence 0.9), nothing for "liver"."""

    threshold = 0.5

    def __init__(self, lite) -> None:
        self.lite = lite

    def vector(self, phrases):
        return np.full(384, 1.0 if phrases[0] == "kidney" else 0.0, np.float32)

    def decode(self, embedding, vectors):
        kidney = vectors[:, 0] > 0
        logits = np.where(kidney[:, None, None], np.where(LOW_X | HIGH_X, 8.0, -8.0), -8.0)
        return Decoded(logits=logits[:, None].astype(np.float32),
                       scores=np.where(kidney, 0.9, 0.1)[:, None].astype(np.float32))  # fmt: skip


@pytest.fixture
def png(tmp_path: Path, shared_model, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr("medseg.inference.text.text_decoder", lambda pred, lite: Head(lite))
    path = tmp_path / "body.png"
    mio.save((BODY * 120 + (LOW_X | HIGH_X) * 100).astype(np.uint8), path)
    return path


def test_text_objects_are_written_as_label_values(png: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "seg.png"
    argv = ["segment", "--model", "litemedsam", str(png), "-o", str(out)]
    assert main([*argv, "--text", "left kidney", "--text", "right kidney", "--text", "liver"]) == 0
    lab = mio.load_label(out).array
    # a PNG is shown radiologically: the patient's left is on the image's right (high x)
    np.testing.assert_array_equal(lab, np.where(HIGH_X, 1, np.where(LOW_X, 2, 0)))
    printed = capsys.readouterr().out
    assert "object 1 'left kidney' (left kidney, presence 0.90): label 1" in printed
    assert "object 3: 'liver': not found (presence 0.10); empty mask written" in printed


def test_text_option_errors(png: Path, tmp_path: Path, capsys) -> None:
    argv = ["segment", "--model", "litemedsam", str(png), "-o", str(tmp_path / "s.png")]
    assert main([*argv, "--text", "flux capacitor"]) == 2
    assert "unknown target 'flux capacitor'; nearest known targets:" in capsys.readouterr().err
    assert main([*argv, "--text", "kidney", "--box", "1,1,9,9"]) == 2
    assert "--text takes --point corrections only, not --box" in capsys.readouterr().err
    assert not (tmp_path / "s.png").exists()  # nothing half-written


def test_text_prompts_keywords() -> None:
    assert text_prompts([], {"box": (1, 2, 3, 4)}) == {"box": (1, 2, 3, 4)}
    assert text_prompts(["liver"], {"points": [(1, 2)]}) == {"points": [(1, 2)], "text": "liver"}
    assert text_prompts(["liver", "spleen"], {}) == {"texts": ["liver", "spleen"]}
    with pytest.raises(PromptError, match="one --text with --point"):
        text_prompts(["liver", "spleen"], {"points": [(1, 2)]})
    with pytest.raises(PromptError, match="not --scribble"):
        text_prompts(["liver"], {"scribbles": [{}]})


def test_list_targets_prints_the_vocabulary(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["segment", "--list-targets", "XR"])
    assert done.value.code == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert (
        "left lung  [CT, MR, XR]  (also: left lung field, left lungs, left pulmonary, lung left)"
        in lines
    )
    assert not any(line.startswith("liver ") for line in lines)  # no liver in the X-ray sets
    assert out.err.endswith(" targets\n")
    with pytest.raises(SystemExit) as done:
        main(["segment", "--list-targets", "PET"])
    assert done.value.code == 2
    assert "no text targets for modality 'PET'; known: CT, " in capsys.readouterr().err
