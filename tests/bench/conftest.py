"""Test-only models and a tiny dataset for the benchmark tests."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from medseg.io import save


class BrightModel:
    """A predictor-like test model that segments bright pixels (value > 50).

    - box ``(x0, y0, x1, y1)``: the bright pixels inside the box, minus its top 3 rows;
    - a positive click adds the bright pixels within 2 px (Chebyshev) of the click, a negative
      click removes predicted pixels within 2 px; with ``mask_input`` only the newest click is
      applied to the previous mask (the older ones are in it already).

    Every ``predict`` call's keyword arguments are kept in ``calls``.
    """

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.images = 0

    def set_image(self, image: Any) -> None:
        arr = np.asarray(getattr(image, "array", image), dtype=float)
        self.bright = (arr.mean(axis=-1) if arr.ndim == 3 else arr) > 50
        self.images += 1

    def predict(self, box=None, points=None, point_labels=None, mask_input=None,
                multimask=False) -> SimpleNamespace:  # fmt: skip
        self.calls.append({"box": box, "points": points, "point_labels": point_labels,
                           "mask_input": mask_input})  # fmt: skip
        if mask_input is not None:
            pred = np.asarray(mask_input.mask).copy()
        else:
            pred = np.zeros_like(self.bright)
            if box is not None:
                x0, y0, x1, y1 = box
                pred[y0 + 3 : y1 + 1, x0 : x1 + 1] = self.bright[y0 + 3 : y1 + 1, x0 : x1 + 1]
        clicks = list(zip(points or [], point_labels or [], strict=True))
        for (x, y), label in clicks[-1:] if mask_input is not None else clicks:
            win = (slice(max(0, y - 2), y + 3), slice(max(0, x - 2), x + 3))
            pred[win] = self.bright[win] if label == 1 else False
        return SimpleNamespace(mask=pred)


@pytest.fixture
def bright_model() -> type[BrightModel]:
    return BrightModel


@pytest.fixture
def toy_dataset(tmp_path: Path) -> Path:
    """``toy/``: cases a, b (two 10x10 squares each, labels 1 and 2, image = 100 inside),
    ``empty`` (no foreground) and ``bad`` (label smaller than the image)."""
    root = tmp_path / "toy"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for name, off in (("a", 0), ("b", 3)):
        lab = np.zeros((40, 50), np.uint8)
        lab[5 + off : 15 + off, 5:15] = 1
        lab[22:32, 30 + off : 40 + off] = 2
        save((lab > 0).astype(np.uint8) * 100, root / "images" / f"{name}.png")
        save(lab, root / "labels" / f"{name}.png")
    save(np.zeros((40, 50), np.uint8), root / "images" / "empty.png")
    save(np.zeros((40, 50), np.uint8), root / "labels" / "empty.png")
    save(np.zeros((40, 50), np.uint8), root / "images" / "bad.png")
    save(np.ones((30, 50), np.uint8), root / "labels" / "bad.png")
    return root
