"""Predictions from an automatic first mask (a ``medseg auto`` model given to the Predictor,
see :mod:`medseg.automatic.segmenter`): the automatic mask of one class as a
:class:`Prediction`, and a volume whose prompted slice was corrected.

Shapes: ``S`` is the image's spatial shape, ``(H, W)`` or ``(Z, Y, X)``; the automatic
masks are bool arrays of shape ``S``. An automatic mask has no quality score: its
``scores`` are NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medseg.inference.prompt_input import binary_logits
from medseg.inference.result import Prediction
from medseg.io.image import Image

__all__ = ["auto_prediction", "corrected_volume", "slice_range"]


def slice_range(mask: np.ndarray) -> tuple[tuple[int, int], ...]:
    """``((z_first, z_last),)`` of a ``(Z, Y, X)`` mask's foreground, ``()`` when empty."""
    zs = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    return ((int(zs[0]), int(zs[-1])),) if zs.size else ()


def auto_prediction(mask: np.ndarray, image: Image, info: dict[str, Any]) -> Prediction:
    """The automatic mask ``S`` of one class as a one-object :class:`Prediction`."""
    mask = np.asarray(mask, dtype=bool)
    logits = binary_logits(mask)
    return Prediction(
        mask=mask,
        logits=logits,
        scores=np.full(1, np.nan, np.float32),
        labels=mask.astype(np.uint8),
        image=image,
        slice_ranges=slice_range(mask) if mask.ndim == 3 else (),
        info={**info, "auto": True},
    )


def corrected_volume(
    mask: np.ndarray,
    z: int,
    slice_logits: np.ndarray,
    score: float,
    image: Image,
    info: dict[str, Any],
) -> Prediction:
    """The automatic ``(Z, Y, X)`` mask with slice ``z`` replaced by the corrected
    ``(Y, X)`` logits (``> 0`` is foreground)."""
    logits = binary_logits(mask)
    logits[z] = slice_logits
    out = logits > 0
    return Prediction(
        mask=out,
        logits=logits,
        scores=np.array([score], np.float32),
        labels=out.astype(np.uint8),
        image=image,
        slice_ranges=slice_range(out),
        info={**info, "auto": True, "start_slice": z},
    )
