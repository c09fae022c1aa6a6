"""Largest-connected-component post-processing, enabled per class only where validation
shows it raises the mean Dice (nnU-Net's rule)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.io.atomic import atomic_path

__all__ = [
    "keep_largest_component",
    "decide_postprocessing",
    "save_postprocessing",
    "load_postprocessing",
]


def keep_largest_component(labels: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """A copy of ``labels`` (any shape) where each listed value keeps only its largest
    connected component (face connectivity); removed voxels become background 0."""
    from scipy import ndimage

    out = np.array(labels, copy=True)
    for v in values:
        comp, n = ndimage.label(out == v)
        if n > 1:
            sizes = np.bincount(comp.ravel())
            sizes[0] = 0
            out[(comp != int(np.argmax(sizes))) & (comp > 0)] = 0
    return out


def _dice(pred: np.ndarray, gt: np.ndarray) -> float:
    p, g = int(pred.sum()), int(gt.sum())
    return 1.0 if p + g == 0 else 2.0 * int((pred & gt).sum()) / (p + g)


def decide_postprocessing(
    predictions: Sequence[np.ndarray], references: Sequence[np.ndarray], values: Sequence[int]
) -> dict[str, Any]:
    """For each label value, compare the mean Dice over cases with and without keeping the
    largest component; enable it where the mean strictly improves.

    Returns:
        ``{"largest_component": [values], "dice_before": {v: d}, "dice_after": {v: d}}``.
    """
    if len(predictions) != len(references) or not predictions:
        raise InputError(
            "postprocessing needs the same non-zero number of predictions and references"
        )
    enabled, before, after = [], {}, {}
    for v in values:
        b = [_dice(p == v, r == v) for p, r in zip(predictions, references, strict=True)]
        a = [
            _dice(keep_largest_component(p == v, [1]) > 0, r == v)
            for p, r in zip(predictions, references, strict=True)
        ]
        before[int(v)], after[int(v)] = float(np.mean(b)), float(np.mean(a))
        if after[int(v)] > before[int(v)]:
            enabled.append(int(v))
    return {"largest_component": enabled, "dice_before": before, "dice_after": after}


def save_postprocessing(spec: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(spec, indent=2) + "\n")
    return path


def load_postprocessing(path: str | Path) -> list[int]:
    """Label values to post-process; empty when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return []
    return [int(v) for v in json.loads(path.read_text()).get("largest_component", [])]
