"""Benchmark figures: Dice against interactions, and a gallery of the worst targets.

Figures are built with matplotlib's object API (``Figure`` + Agg canvas, no pyplot state)
and written atomically.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg.bench.runner import GalleryItem
from medseg.io.atomic import atomic_path

__all__ = ["save_figure", "plot_curves", "render_gallery", "gallery_filename", "crop_box"]

# Label values for render_overlay's palette: 1 red, 2 green, 3 yellow, 4 blue.
_GT, _PRED, _POS, _NEG = 2, 4, 2, 1


def save_figure(fig: Any, path: Path, dpi: int = 110, tight: bool = False) -> Path:
    """Write ``fig`` as PNG; ``tight``: crop/grow the canvas to everything drawn (so that
    no label is ever cut off)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    return path


def plot_curves(summary: Sequence[dict[str, Any]], path: str | Path) -> Path | None:
    """Mean Dice after each interaction, one curve per model and protocol, one panel per
    dataset plus an ``overall`` panel (when there are several datasets). One-interaction
    protocols (box, cvpr24) are a square at 1 and a dashed level across the panel.

    ``summary``: the ``summary`` list of ``results.json``. Returns None when nothing ran.
    """
    from matplotlib.figure import Figure

    ok = [s for s in summary if s["status"] == "ok" and s["overall"]["n_targets"]]
    if not ok:
        return None
    datasets = list(
        dict.fromkeys(ds for s in ok for ds, b in s["per_dataset"].items() if b["n_targets"])
    )
    panels = datasets + (["overall"] if len(datasets) > 1 else [])
    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(4.0 * ncols, 3.4 * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
    max_x = 1
    for ax, panel in zip(axes, panels, strict=False):
        for i, s in enumerate(ok):
            block = s["overall"] if panel == "overall" else s["per_dataset"].get(panel)
            if not block or not block["n_targets"]:
                continue
            y = block["mean_dice_per_step"]
            x = np.arange(1, len(y) + 1)
            max_x = max(max_x, len(y))
            label = f"{s['model']} · {s['protocol']}"
            if len(y) == 1:  # one-shot protocol: a dashed level to compare the curves with
                ax.axhline(y[0], ls="--", lw=1.2, color=f"C{i % 10}", label=label)
                ax.plot(x, y, marker="s", ms=5, color=f"C{i % 10}")
            else:
                ax.plot(x, y, marker="o", ms=4, lw=1.6, color=f"C{i % 10}", label=label)
        n = max((b["n_targets"] for s in ok for d, b in s["per_dataset"].items() if d == panel),
                default=max(s["overall"]["n_targets"] for s in ok))  # fmt: skip
        ax.set_title(f"{panel} ({n} targets)", fontsize=10)
        ax.set_xlabel("interactions")
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[: len(panels)]:
        ax.set_ylim(0.0, 1.02)
        ax.set_xlim(0.5, max_x + 0.5)
        ax.set_xticks(range(1, max_x + 1, max(1, max_x // 10)))
    for row in range(nrows):
        axes[row * ncols].set_ylabel("mean Dice")
    _legend(fig, axes[: len(panels)])
    fig.suptitle("Mean Dice after each interaction")
    return save_figure(fig, Path(path), tight=True)


def _legend(fig: Any, axes: Sequence[Any], max_cols: int = 4) -> Any:
    """One legend for every curve of ``axes``, below the panels, with as many columns (at
    most ``max_cols``) as fit the figure's width; the figure is widened when even one
    column does not fit (long model names on a one-panel figure)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    handles: list[Any] = []
    labels: list[str] = []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    renderer = FigureCanvasAgg(fig).get_renderer()
    for ncol in range(min(max_cols, len(labels)), 0, -1):
        legend = fig.legend(handles, labels, loc="outside lower center", ncol=ncol,
                            frameon=False)  # fmt: skip
        needed = legend.get_window_extent(renderer).width / fig.dpi + 0.2  # inches + margin
        if needed <= fig.get_figwidth() or ncol == 1:
            break
        legend.remove()
    if needed > fig.get_figwidth():
        fig.set_figwidth(needed)
    return legend


def crop_box(mask: np.ndarray, box: Sequence[int] | None = None,
             points: Sequence[Sequence[int]] = (), margin: float = 0.3,
             min_size: int = 96) -> tuple[slice, slice]:  # fmt: skip
    """A square-ish crop (rows, columns) of a 2D ``mask``'s shape around the mask, the
    ``box`` ``(x0, y0, x1, y1)`` and the ``points`` ``(x, y)``: their bounding box grown by
    ``margin`` x its size, at least ``min_size`` pixels, the shorter side grown to the longer
    one where the image allows. The prediction is left out on purpose: scattered false
    positives would zoom the view out until the target disappears."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    ys = [*ys.tolist(), *(int(p[1]) for p in points)]
    xs = [*xs.tolist(), *(int(p[0]) for p in points)]
    if box is not None:
        xs += [int(box[0]), int(box[2])]
        ys += [int(box[1]), int(box[3])]
    if not xs:
        return slice(0, h), slice(0, w)
    y0, y1, x0, x1 = min(ys), max(ys), min(xs), max(xs)
    side = max(min_size, int((1 + 2 * margin) * max(y1 - y0 + 1, x1 - x0 + 1)))

    def centred(lo: int, hi: int, size: int) -> slice:
        extent = min(side, size)
        start = min(max(0, (lo + hi + 1) // 2 - extent // 2), size - extent)
        return slice(start, start + extent)

    return centred(y0, y1, h), centred(x0, x1, w)


def _panels(item: GalleryItem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image, ground truth and prediction-with-prompts panels, cropped before drawing so
    that the prompt markers keep a readable size."""
    from medseg.io.overlay import render_overlay, to_display_rgb

    rows, cols = crop_box(item.gt, item.box, item.points)
    dy, dx = rows.start, cols.start
    image = item.image.with_array(item.image.array[rows, cols])
    pred = item.pred.astype(np.uint8) * _PRED
    for s in item.scribbles:  # scribbles are drawn as labels over the prediction
        pred[s.mask(pred.shape)] = _POS if s.label == 1 else _NEG
    boxes = [] if item.box is None else [(item.box[0] - dx, item.box[1] - dy,
                                          item.box[2] - dx, item.box[3] - dy)]  # fmt: skip
    points = [(p[0] - dx, p[1] - dy) for p in item.points]
    plain = to_display_rgb(image)
    gt = render_overlay(image, item.gt[rows, cols].astype(np.uint8) * _GT)
    drawn = render_overlay(image, pred[rows, cols], boxes=boxes, points=points,
                           point_labels=item.point_labels)  # fmt: skip
    return plain, gt, drawn


def render_gallery(items: Sequence[GalleryItem], path: str | Path, title: str) -> Path | None:
    """One row per item (worst first): image, ground truth, prediction with prompts."""
    from matplotlib.figure import Figure

    if not items:
        return None
    height = 0.5 + 3.0 * len(items)
    fig = Figure(figsize=(9.0, height))  # manual layout: constrained layout doubles the time
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.5 / height, wspace=0.04,
                        hspace=0.12)  # fmt: skip
    axes = fig.subplots(len(items), 3, squeeze=False)
    for row, item in zip(axes, items, strict=True):
        plain, gt, pred = _panels(item)
        spec = item.spec
        name = f" ({spec.label_name})" if spec.label_name else ""
        where = f" z={item.slice_index}" if item.slice_index is not None else ""
        heads = [f"{spec.dataset}/{spec.case_id}{where}", f"ground truth: {spec.target_id}{name}",
                 f"prediction: Dice {item.dice:.3f}"]  # fmt: skip
        for ax, img, head in zip(row, (plain, gt, pred), heads, strict=True):
            ax.imshow(img, interpolation="nearest")
            ax.set_title(head, fontsize=8)
            ax.set_axis_off()
    fig.suptitle(title, fontsize=11, y=1 - 0.12 / height)
    return save_figure(fig, Path(path), dpi=90)


def gallery_filename(model: str, protocol: str) -> str:
    """``gallery_<model>_<protocol>.png`` with unsafe characters replaced by ``-``."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{model}_{protocol}")
    return f"gallery_{safe}.png"
