"""Choosing the post-processing of a ``medseg auto`` model: largest-connected-component per
class, enabled only where validation shows it raises the mean Dice (nnU-Net's rule)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg.automatic.postprocess import keep_largest_component
from medseg.errors import InputError
from medseg.io.atomic import atomic_path
from medseg.metrics.overlap import dice

__all__ = ["decide_postprocessing", "save_postprocessing"]


def decide_postprocessing(
    predictions: Sequence[np.ndarray],
    references: Sequence[np.ndarray],
    values: Sequence[int],
    *,
    scored: Sequence[Sequence[int]] | None = None,
) -> dict[str, Any]:
    """For each label value, compare the mean Dice over cases with and without keeping the
    largest component; enable it where the mean strictly improves.

    Args:
        predictions: predicted label maps, ``(H, W)`` or ``(Z, Y, X)`` each.
        references: reference label maps, same shapes.
        values: label values to decide for.
        scored: per case, the values it may be scored on (partial labels); None = all.
            A value no case is scored on stays disabled and gets no Dice entry.

    Returns:
        ``{"largest_component": [values], "dice_before": {v: d}, "dice_after": {v: d}}``.
    """
    if len(predictions) != len(references) or not predictions:
        raise InputError(
            "postprocessing needs the same non-zero number of predictions and references"
        )
    enabled, before, after = [], {}, {}
    for v in values:
        pairs = [
            (p, r)
            for i, (p, r) in enumerate(zip(predictions, references, strict=True))
            if scored is None or v in scored[i]
        ]
        if not pairs:
            continue
        b = [dice(p == v, r == v) for p, r in pairs]
        a = [dice(keep_largest_component(p == v, [1]) > 0, r == v) for p, r in pairs]
        before[int(v)], after[int(v)] = float(np.mean(b)), float(np.mean(a))
        if after[int(v)] > before[int(v)]:
            enabled.append(int(v))
    return {"largest_component": enabled, "dice_before": before, "dice_after": after}


def save_postprocessing(spec: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(spec, indent=2) + "\n")
    return path
