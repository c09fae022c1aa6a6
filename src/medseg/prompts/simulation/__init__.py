"""Interaction simulation: the prompts a user would give, computed from the ground truth.

Used by ``medseg bench interactive`` and by interactive-model training. Every function works
on 2D ``(H, W)`` and 3D ``(Z, Y, X)`` boolean masks and returns prompts in medseg's prompt
convention: points and boxes are pixel indices ``(x, y[, z])`` with ``x`` = column.
Randomness comes only from the ``numpy.random.Generator`` passed in, so a seed fixes
every prompt.

Boxes (:func:`simulate_box`): the target's tight box ``(xmin, ymin, xmax, ymax)`` of its
foreground pixel indices (the SAM / MedSAM convention; 3D ``(x0, y0, z0, x1, y1, z1)``),
each side optionally moved by a uniform random amount of up to ``jitter`` x the box size
along that axis, then clipped to the image.

Clicks (:func:`next_click`, :class:`ClickSimulator`): the RITM / CVPR 2025 challenge rule.

1. Error regions: false negatives (``gt & ~pred``) and false positives (``pred & ~gt``),
   split into connected components (full connectivity: 8 in 2D, 26 in 3D). With
   ``ClickConfig(error_regions="combined")`` the components are taken of ``pred != gt``
   as a whole, as the CVPR 2025 evaluation code does.
2. The largest region (most pixels) is corrected first. Equal sizes: false negatives
   first, then the region that comes first in raster order.
3. The click goes to the maximum of the region's Euclidean distance transform (distance of
   each region pixel to the nearest pixel outside the region). The region is padded with
   one layer of background before the transform, so the image border counts as a region
   border: a region touching the border is clicked away from it, as a user would.
   Pixels clicked before are excluded (never the same pixel twice); when every maximum
   candidate of a region was clicked, the next pixel of the same region or the next region
   is used. Ties: first in raster order (RITM) or a random one (``tie_break="random"``,
   CVPR 2025).
4. The click is positive (label 1) in a missed region, negative (0) in a false positive.

Scribbles (:func:`simulate_scribble`, :func:`next_scribble`), ScribblePrompt's kinds, chosen
by ``mode``:

- ``"centerline"`` (the default, used by ``medseg bench``): a path along the skeleton of the
  eroded region (pixels at least ``erosion`` x the region's largest inner distance from its
  border): the longest skeleton path from a random start, then a random contiguous part of
  it covering ``min_length`` to all of its length;
- ``"line"``: a random walk of 1-3 straight segments inside the region;
- ``"contour"``: an arc of the region's contour moved 1-3 px inward;
- ``"random"`` (used for training): one of the three per call.

``warp`` (a probability) deforms the scribble with a smooth random displacement field and
clips it back into its region (:class:`ScribbleShapeConfig` holds the shape parameters).
The first scribble lies in the target; corrections lie in the largest error region
(positive in a miss, negative in a false positive), chosen as for clicks.
"""

from __future__ import annotations

from medseg.prompts.simulation.clicks import (
    Click,
    ClickConfig,
    ClickSimulator,
    ErrorRegion,
    error_regions,
    next_click,
    region_distance,
    simulate_box,
    target_box,
)
from medseg.prompts.simulation.scribble_shapes import ScribbleShapeConfig
from medseg.prompts.simulation.scribbles import (
    SCRIBBLE_MODES,
    Scribble,
    ScribbleConfig,
    next_scribble,
    simulate_scribble,
)

__all__ = [
    "Click",
    "ClickConfig",
    "ClickSimulator",
    "Scribble",
    "ScribbleConfig",
    "ScribbleShapeConfig",
    "SCRIBBLE_MODES",
    "ErrorRegion",
    "target_box",
    "simulate_box",
    "error_regions",
    "region_distance",
    "next_click",
    "simulate_scribble",
    "next_scribble",
]
