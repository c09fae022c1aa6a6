"""Progressive merge of a corrective click's prediction into the previous mask.

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

Written here (scipy's connected-component labelling does the work) because no library
implements this rule.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medseg.errors import InputError

__all__ = ["progressive_merge"]

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
