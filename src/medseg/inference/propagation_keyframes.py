"""Keyframe propagation: encode a few slices, interpolate the masks in between.

The slice-by-slice rule (:mod:`medseg.inference.propagation`) runs the image encoder on every
slice it visits, which is most of its cost (LiteMedSAM: ~0.4 s per slice on one CPU thread).
This rule (``PropagationConfig(algorithm="keyframes")``, also in ``docs/models.md``) visits
only *keyframes*, per object and direction:

1. From the last accepted keyframe ``a`` the next keyframe is ``a + step`` (clipped to the
   slice range); the first step is ``first_step_mm`` in millimetres (at least one slice);
   after an accepted keyframe whose mask agrees with the one before (Dice >=
   ``grow_dice``) the step doubles, up to ``max_step`` slices, and after one that does not
   it halves (a changing shape is sampled more densely).
2. A keyframe is prompted with the box of ``a``'s mask, enlarged per side by
   ``keyframe_margin`` (5 %) of its width/height, at least ``min_margin`` pixels, and
   accepted by the slice rule's tests plus ``max_growth`` (1.3): its area is at most that
   many times ``a``'s (a mask that suddenly grows has leaked into a neighbour). An accepted
   keyframe more than one slice from ``a`` whose mask disagrees with ``a``'s (Dice <
   ``grow_dice``) is dropped and the slice at half the distance tried instead
   when ``refine_changes`` is on (off by default: measured worse on validation, the denser
   keyframes stop earlier on weak slices).
3. A rejected keyframe ``r`` more than one slice away is bisected: the middle slice between
   ``a`` and ``r`` is tried the same way (accepted: it becomes ``a``; rejected: it becomes
   ``r``), until ``a`` and ``r`` are neighbours. So the object's end is found exactly with
   ``log2(step)`` extra slices.
4. The slices between two accepted keyframes get the linear interpolation of their signed
   distance maps (shape-based interpolation); rejected slices and those beyond keep no mask.
5. Corrections (``previous``): a direction stops at the first keyframe whose mask agrees
   with the previous result (Dice >= ``converge_dice``) or that lies ``correction_reach_mm``
   from the corrected slice, the slices between interpolated and the previous result kept
   beyond. After a rejection the previous result is kept beyond, except when the correction
   left its own slice empty (a negative click removed the object there): then the slices
   away from the previous result's largest slice are cleared (the click ended a leak).
   A rejected keyframe is weak evidence (an unstable or grown mask); an emptied slice is the
   user's word.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage

from medseg.inference.result import UNREACHED_LOGIT
from medseg.metrics.overlap import dice_from_counts, overlap_counts
from medseg.prompts.types import box_from_mask

__all__ = ["first_step", "interpolate_masks", "sweep_object", "towards_core"]

# logits written on interpolated slices: the signed distance in pixels, clipped to this
INTERPOLATED_LOGIT_CLIP = 8.0


def first_step(spacing_z: float, first_step_mm: float) -> int:
    """Slices of the first keyframe step: ``round(first_step_mm / spacing_z)``, at least 1."""
    if not np.isfinite(spacing_z) or spacing_z <= 0:
        return 1
    return max(1, round(first_step_mm / spacing_z))


def _signed_distance(mask: np.ndarray) -> np.ndarray:
    """Positive inside, negative outside, in pixels (``(H, W)`` float32)."""
    if not mask.any():
        return np.full(mask.shape, -1e3, np.float32)
    inside = ndimage.distance_transform_edt(mask)
    outside = ndimage.distance_transform_edt(~mask)
    return (inside - outside).astype(np.float32)


def interpolate_masks(a: np.ndarray, b: np.ndarray, count: int) -> np.ndarray:
    """``count`` slices between boolean masks ``a`` and ``b`` (``(H, W)``), excluded: the
    signed distance maps linearly interpolated, ``(count, H, W)`` float32 logits clipped to
    ``±INTERPOLATED_LOGIT_CLIP`` (> 0 inside)."""
    out = np.full((count, *a.shape), -INTERPOLATED_LOGIT_CLIP, np.float32)
    both = a | b
    if count <= 0 or not both.any():
        return out
    ys, xs = np.nonzero(both)
    pad = 2
    y0, y1 = max(0, ys.min() - pad), min(a.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(a.shape[1], xs.max() + pad + 1)
    da, db = _signed_distance(a[y0:y1, x0:x1]), _signed_distance(b[y0:y1, x0:x1])
    for j in range(count):
        t = (j + 1) / (count + 1)
        d = (1 - t) * da + t * db
        out[j, y0:y1, x0:x1] = np.clip(d, -INTERPOLATED_LOGIT_CLIP, INTERPOLATED_LOGIT_CLIP)
    return out


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    inter, na, nb = overlap_counts(a, b)
    return dice_from_counts(inter, na, nb) if na + nb else 0.0


def _fill(out: np.ndarray, a: int, z: int, keys: dict[int, np.ndarray]) -> None:
    """Interpolate ``out`` strictly between accepted keyframes ``a`` and ``z``."""
    n = abs(z - a) - 1
    if n <= 0:
        return
    vals = interpolate_masks(keys[a] > 0, keys[z] > 0, n)
    zs = range(a + 1, z) if z > a else range(a - 1, z, -1)
    for j, s in enumerate(zs):
        out[s] = vals[j]


def sweep_object(
    decode: Callable[[int, np.ndarray], tuple[np.ndarray, float]],
    out: np.ndarray,
    span: tuple[int, int, int],
    step0: int,
    cfg: Any,
    accept: Callable[[np.ndarray, np.ndarray, int], bool],
    previous: np.ndarray | None = None,
    reach: int = 1 << 30,
) -> tuple[dict[int, tuple[float, ...]], list[float], str]:
    """One object, one direction: ``span = (start, stop, direction ±1)``, ``out`` the
    object's ``(Z, H, W)`` logits with the start slice filled (rule of the module docstring).

    ``decode(z, box (4,)) -> (logits (H, W), score)``; ``accept(logits, prev_mask,
    prev_area)`` the slice rule's test. Returns the boxes used per slice, the scores of the
    accepted keyframes, and how the direction ended (``"range"``, ``"rejected"``,
    ``"converged"``).
    """
    from medseg.inference.propagation import enlarge_box

    start, stop, dirn = span
    keys = {start: out[start].copy()}
    boxes: dict[int, tuple[float, ...]] = {}
    scores: list[float] = []
    a, rejected, step = start, None, step0
    if not (out[start] > 0).any():
        return boxes, scores, "rejected"
    while True:
        if rejected is None:
            if a == stop:
                return boxes, scores, "range"
            z = (
                a + dirn * min(step, reach - abs(a - start))
                if previous is not None
                else a + dirn * step
            )
            z = min(z, stop) if dirn > 0 else max(z, stop)
        else:
            gap = abs(rejected - a)
            if gap <= 1:
                return boxes, scores, "rejected"
            z = a + dirn * (gap // 2)
        prev = keys[a] > 0
        box = enlarge_box(box_from_mask(prev), prev.shape, cfg.keyframe_margin, cfg.min_margin)
        logits, score = decode(z, np.asarray(box, np.float64))
        if not accept(logits, prev, int(prev.sum())):
            rejected = z
            continue
        agree = _dice(logits > 0, prev) >= cfg.grow_dice
        if not agree and rejected is None and abs(z - a) > 1 and cfg.refine_changes:
            step = abs(z - a) // 2  # rule 2: a changed shape is confirmed closer to ``a``
            continue
        keys[z], boxes[z] = logits, box
        scores.append(float(score))
        out[z] = logits
        _fill(out, a, z, keys)
        step = min(cfg.max_step, step * 2) if agree else max(1, step // 2)
        a = z
        if previous is None:
            continue
        if _dice(logits > 0, previous[z] > 0) >= cfg.converge_dice or abs(z - start) >= reach:
            return boxes, scores, "converged"


def last_reached(out: np.ndarray, start: int, dirn: int) -> int:
    """The last slice from ``start`` in direction ``dirn`` before the first unreached one."""
    z = start
    while 0 <= z + dirn < out.shape[0] and not np.all(out[z + dirn] == UNREACHED_LOGIT):
        z += dirn
    return z


def towards_core(previous: np.ndarray, start: int, dirn: int) -> bool:
    """True when moving from ``start`` by ``dirn`` heads towards (or stays at) the slice
    where the previous result ``(Z, H, W)`` logits is largest."""
    areas = (previous > 0).reshape(previous.shape[0], -1).sum(axis=1)
    if not areas.any():
        return False
    core = int(np.argmax(areas))
    return core == start or (core - start) * dirn > 0


def propagate_object(
    segment: Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray]],
    out: np.ndarray,
    start: int,
    z_range: tuple[int, int],
    step0: int,
    cfg: Any,
    accept: Callable[[np.ndarray, np.ndarray, int], bool],
    previous: np.ndarray | None = None,
    reach: int = 1 << 30,
) -> tuple[dict[int, tuple[float, ...]], list[float]]:
    """Both directions of one object (``out``: its ``(Z, H, W)`` logits, start slice set,
    the rest UNREACHED_LOGIT; filled in place). Returns boxes per slice and keyframe scores.

    ``segment(z, boxes (1, 4)) -> (logits (1, H, W), scores (1,))``.
    """

    def decode(z: int, box: np.ndarray) -> tuple[np.ndarray, float]:
        logits, scores = segment(z, box[None])
        return logits[0], float(scores[0])

    boxes: dict[int, tuple[float, ...]] = {}
    scores: list[float] = []
    seeded = bool((out[start] > 0).any())
    for stop, dirn in ((z_range[1], 1), (z_range[0], -1)):
        b, s, how = sweep_object(
            decode, out, (start, stop, dirn), step0, cfg, accept, previous, reach
        )
        boxes.update(b)
        scores.extend(s)
        if previous is None or how == "range":
            continue
        if how == "rejected" and not seeded and not towards_core(previous, start, dirn):
            continue  # the correction removed the object on its slice: beyond is cleared
        first = last_reached(out, start, dirn) + dirn
        if (first - stop) * dirn <= 0:
            lo, hi = sorted((first, stop))
            out[lo : hi + 1] = previous[lo : hi + 1]
    return boxes, scores
