"""Merging a corrective click's prediction into the previous mask: progressive merge and
touch-up.

After a corrective click an interactive network re-predicts the whole window, so a click on
one boundary can also change the mask far from it, and a correction can make the result
worse. FocalClick (Chen et al., CVPR 2022, "progressive merge") keeps the previous mask and
takes from the new prediction only the connected region that the click changed:

- positive click on a pixel that was background: add the connected component (8-connected)
  of ``new & ~previous`` that contains the click; nothing else changes;
- negative click on a pixel that was foreground: remove the connected component of
  ``previous & ~new`` that contains the click;
- if the new prediction did not flip the clicked pixel, the previous mask stays as it was;
- a click that agrees with the previous mask (a positive click inside it, a negative one
  outside) says "redo this object": the new prediction is taken as it is.

The touch-up rule (:func:`touchup_merge`) is milder: a correction that changes only a few
pixels (a touch-up of a good mask) is kept near its click, while a large correction (the
mask was wrong) is taken as predicted. Measured on the held-out benchmark, most pixels a
late click got wrong were boundary pixels far from it (docs/benchmarks.md).

Written here (scipy's connected-component labelling does the work) because no library
implements these rules.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medseg.errors import InputError

__all__ = ["progressive_merge", "touchup_merge"]

_EIGHT = np.ones((3, 3), bool)


def progressive_merge(
    new_logits: np.ndarray, prev_logits: np.ndarray, click: tuple[float, float], positive: bool
) -> np.ndarray:
    """Merged logits ``(H, W)`` (see the module docstring).

    Args:
        new_logits: ``(H, W)`` logits of the prediction with the click (> 0 foreground).
        prev_logits: ``(H, W)`` logits of the previous result.
        click: the newest click ``(x, y)`` in pixels (x = column, y = row).
        positive: True for a foreground click.
    """
    if new_logits.shape != prev_logits.shape or new_logits.ndim != 2:
        raise InputError(
            f"logits must be two (H, W) arrays of one shape, got {new_logits.shape} "
            f"and {prev_logits.shape}"
        )
    h, w = new_logits.shape
    col = int(np.clip(round(float(click[0])), 0, w - 1))
    row = int(np.clip(round(float(click[1])), 0, h - 1))
    new, old = new_logits > 0, prev_logits > 0
    if bool(old[row, col]) == positive:  # the click agrees with the previous mask
        return new_logits
    changed = (new & ~old) if positive else (old & ~new)
    if not changed[row, col]:  # the network did not follow the click
        return prev_logits.copy()
    components, _ = ndimage.label(changed, structure=_EIGHT)
    region = components == components[row, col]
    return np.where(region, new_logits, prev_logits).astype(new_logits.dtype, copy=False)


def touchup_merge(
    new_logits: np.ndarray,
    prev_logits: np.ndarray,
    click: tuple[float, float],
    radius_fraction: float,
    max_change: float,
    positive: bool | None = None,
) -> np.ndarray:
    """Keep a small correction local: when the new prediction changes fewer pixels than
    ``max_change`` times the previous mask's area, take it only within a disk around the
    newest ``click`` ``(x, y)`` of radius ``radius_fraction`` times the longest side of the
    masks' extent (at least 3 px); else take it as it is.

    Args:
        new_logits, prev_logits: ``(H, W)`` logits (> 0 foreground) with and before the click.
        click: the newest click ``(x, y)`` in pixels.
        radius_fraction: disk radius / longest side of the extent of both masks.
        max_change: changed pixels / previous foreground pixels below which the rule applies.
        positive: True / False: near the click a positive click only adds and a negative
            one only removes; None: take the new prediction there as it is.
    """
    if new_logits.shape != prev_logits.shape or new_logits.ndim != 2:
        raise InputError(
            f"logits must be two (H, W) arrays of one shape, got {new_logits.shape} "
            f"and {prev_logits.shape}"
        )
    new, old = new_logits > 0, prev_logits > 0
    changed = new ^ old
    n_changed = int(np.count_nonzero(changed))
    if n_changed == 0 or n_changed > max_change * max(int(np.count_nonzero(old)), 1):
        return new_logits
    ys, xs = np.nonzero(new | old)
    extent = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    r = max(3.0, radius_fraction * float(extent))
    yy, xx = np.ogrid[: new.shape[0], : new.shape[1]]
    far = (xx - float(click[0])) ** 2 + (yy - float(click[1])) ** 2 > r * r
    if positive is not None:  # a positive click only adds, a negative one only removes
        pick = np.maximum if positive else np.minimum
        new_logits = pick(new_logits, prev_logits)
    return np.where(far, prev_logits, new_logits).astype(new_logits.dtype, copy=False)
