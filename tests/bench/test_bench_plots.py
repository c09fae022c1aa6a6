"""The Dice-vs-interactions figure: the legend always fits inside the saved image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def test_plot_curves_writes_a_png(tmp_path: Path) -> None:
    path = plot_curves(_summary(["litemedsam", "medseg-interactive"], ["kvasir"]),
                       tmp_path / "curves.png")  # fmt: skip
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_curves([], tmp_path / "none.png") is None
