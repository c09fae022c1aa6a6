from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import medseg.io as mio
from medseg.cli.main import main
from medseg.data.samples import SAMPLE_CT_BOX
from medseg.models import registry


@pytest.mark.slow
def test_demo_segments_the_spinal_canal(tmp_path: Path, litemedsam, monkeypatch) -> None:
    real = registry.create_model
    monkeypatch.setattr(
        registry,
        "create_model",
        lambda name, **kw: litemedsam if name == "litemedsam" else real(name, **kw),
    )
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    mask = mio.load(out / "mask.png").array
    assert mask.shape == (128, 128) and set(np.unique(mask)) == {0, 255}
    fg = mask > 0
    x0, y0, x1, y1 = SAMPLE_CT_BOX
    inside = np.zeros_like(fg)
    inside[y0 : y1 + 1, x0 : x1 + 1] = True
    # the canal: a compact blob (measured 271 px) inside the box, not the whole box
    assert 150 < fg.sum() < 0.7 * inside.sum() and not (fg & ~inside).any()
    overlay = mio.load(out / "overlay.png").array
    assert overlay.shape == (128, 128, 3)
    # the yellow box (skimage draws the perimeter just outside the corners)
    np.testing.assert_array_equal(overlay[y0 - 1, x0 + 5], [255, 255, 0])


def test_demo_unknown_model_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["demo", "--out", str(tmp_path), "--model", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
