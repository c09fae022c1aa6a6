"""Largest-connected-component post-processing of a ``medseg auto`` prediction, for the classes
that ``postprocessing.json`` lists (chosen at training time by
:func:`medseg.training.postprocessing.decide_postprocessing`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["keep_largest_component", "load_postprocessing"]


def keep_largest_component(labels: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """A copy of ``labels`` (any shape) where each listed value keeps only its largest
    connected component (face connectivity); removed voxels become background 0.

    Uses MONAI's ``get_largest_connected_component_mask`` (connectivity 1 = faces).
    """
    from monai.transforms.utils import get_largest_connected_component_mask

    out = np.array(labels, copy=True)
    for v in values:
        mask = out == v
        if mask.any():
            keep = np.asarray(get_largest_connected_component_mask(mask, connectivity=1))
            out[mask & ~keep.astype(bool)] = 0
    return out


def load_postprocessing(path: str | Path) -> list[int]:
    """Label values to post-process; empty when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return []
    return [int(v) for v in json.loads(path.read_text()).get("largest_component", [])]
