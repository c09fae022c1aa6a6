"""The Dice-vs-interactions figure: the legend always fits inside the saved image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medseg.bench.plots import _legend, plot_curves


def _summary(models: list[str], datasets: list[str], steps: int = 4) -> list[dict[str, Any]]:
    out = []
    for i, model in enumerate(models):
        curve = [min(1.0, 0.5 + 0.05 * i + 0.1 * k) for k in range(steps)]
        block = {"n_targets": 2, "mean_dice_per_step": curve}
        out.append({"model": model, "protocol": "box+clicks", "status": "ok",
                    "overall": block, "per_dataset": dict.fromkeys(datasets, block)})  # fmt: skip
    return out


@pytest.mark.parametrize(
    ("models", "datasets"),
    [
        (["litemedsam", "medseg-interactive"], ["kvasir_seg_sample"]),
        (["a-very-long-model-name-" * 3, "b"], ["one"]),
        (["litemedsam", "medseg-interactive", "litemedsam+interactive"], ["d1", "d2"]),
    ],
)
def test_legend_fits_the_figure(models: list[str], datasets: list[str]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.0, 3.9), layout="constrained")
    axes = fig.subplots(1, len(datasets), squeeze=False).ravel()
    for ax in axes:
        for m in models:
            ax.plot([1, 2], [0.5, 0.6], label=f"{m} · box+clicks")
    legend = _legend(fig, axes)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    box = legend.get_window_extent(renderer)
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width


def _pixels_of(rgb: np.ndarray, colour: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the pixels of ``rgb`` ``(H, W, 3)`` near matplotlib colour ``colour``."""
    from matplotlib.colors import to_rgb

    target = np.array(to_rgb(colour)) * 255
    return np.nonzero(np.abs(rgb - target).sum(-1) <= 30)


def test_plot_curves_writes_a_png(tmp_path: Path) -> None:
    """One 4 x 3.9 in panel at 110 dpi (~450 x 440 px after the tight crop) with both rising
    curves drawn in their colours, medseg-interactive's (C1) above litemedsam's (C0)."""
    from PIL import Image

    path = plot_curves(_summary(["litemedsam", "medseg-interactive"], ["kvasir"]),
                       tmp_path / "curves.png")  # fmt: skip
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        width, height = im.size
        rgb = np.asarray(im.convert("RGB")).astype(int)
    assert 400 <= width <= 520 and 380 <= height <= 500, im.size
    assert 0.03 < (rgb != 255).any(-1).mean() < 0.5  # drawn, not all background
    plot = slice(0, int(0.85 * height))  # above the legend
    rows = {}
    for colour in ("C0", "C1"):
        ys, xs = _pixels_of(rgb[plot], colour)
        assert ys.size > 200, colour  # the curve and its markers
        mid = (xs.min() + xs.max()) / 2
        assert ys[xs > mid].mean() < ys[xs < mid].mean(), colour  # rising: higher on the right
        rows[colour] = ys.mean()
    assert rows["C1"] < rows["C0"]  # the better curve is higher
    assert plot_curves([], tmp_path / "none.png") is None
