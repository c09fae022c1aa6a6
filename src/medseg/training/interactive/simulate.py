"""Simulated interactions for training (RITM / ScribblePrompt style), in the network frame.

Each training sample carries an :class:`InteractionState` (the prompts so far and the
previous prediction). :func:`first_prompt` starts it with one of

- a box with random jitter (``simulate_box``, up to 15 % of the box size per side),
  optionally with one positive click;
- 1-3 positive clicks;
- a positive scribble (``simulate_scribble``);

and, with probability ``p_prev``, a corrupted copy of the target (eroded or dilated, with a
blob added or removed) as the previous mask, so the model also learns to refine another
model's mask (LiteMedSAM's first box mask). :func:`correct` adds one corrective click or
scribble in an error region of the current prediction (``error_regions``,
``region_distance``, ``next_scribble`` from :mod:`medseg.prompts.simulation`): usually the
largest region, sometimes a random one weighted by size; the click goes to the region's
innermost pixel (the benchmark's rule) or, for variety, to a random pixel of its inner half.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medseg.errors import PromptError
from medseg.models.interactive_net import encode_inputs
from medseg.prompts.simulation import (
    error_regions,
    next_scribble,
    region_distance,
    simulate_box,
    simulate_scribble,
)

__all__ = ["InteractionState", "first_prompt", "correct", "encode_state", "corrupt_mask"]


@dataclass
class InteractionState:
    """Prompts on one ``(S, S)`` network-frame sample; points are ``(x, y)``."""

    size: int
    box: tuple[int, int, int, int] | None = None
    pos_points: list[tuple[float, float]] = field(default_factory=list)
    neg_points: list[tuple[float, float]] = field(default_factory=list)
    pos_scribble: np.ndarray | None = None
    neg_scribble: np.ndarray | None = None
    prev_prob: np.ndarray | None = None

    def add_scribble(self, mask: np.ndarray, label: int) -> None:
        attr = "pos_scribble" if label == 1 else "neg_scribble"
        old = getattr(self, attr)
        setattr(self, attr, mask.copy() if old is None else (old | mask))


def _inner_pixel(region: np.ndarray, rng: np.random.Generator, argmax: bool) -> tuple[int, int]:
    """``(x, y)`` of the region's innermost pixel, or a random pixel of its inner half."""
    dist = region_distance(region)
    if argmax:
        best = np.flatnonzero(dist == dist.max())
        flat = int(best[rng.integers(best.size)])
    else:
        cand = np.flatnonzero(dist >= 0.5 * dist.max())
        flat = int(cand[rng.integers(cand.size)])
    y, x = np.unravel_index(flat, region.shape)
    return int(x), int(y)


def corrupt_mask(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible imperfect mask of ``gt`` ``(S, S)``: eroded/dilated, a blob added or cut."""
    from scipy import ndimage

    m = gt.copy()
    k = int(rng.integers(1, 5))
    if rng.random() < 0.5:
        m = ndimage.binary_dilation(m, iterations=k)
    else:
        eroded = ndimage.binary_erosion(m, iterations=k)
        m = eroded if eroded.any() else m
    if rng.random() < 0.5:
        size = gt.shape[0]
        cy, cx = rng.integers(0, size, 2)
        r = rng.uniform(0.05, 0.2) * size
        yy, xx = np.mgrid[0:size, 0:size]
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        m = (m | disk) if rng.random() < 0.5 else (m & ~disk)
    return m


def first_prompt(
    state: InteractionState, gt: np.ndarray, rng: np.random.Generator, p_prev: float = 0.15
) -> None:
    """Give ``state`` its first prompt for the non-empty target ``gt`` ``(S, S)`` bool."""
    if not gt.any():
        raise PromptError("cannot prompt an empty target")
    u = rng.random()
    if u < 0.45:
        state.box = tuple(simulate_box(gt, float(rng.uniform(0, 0.15)), rng))  # type: ignore[assignment]
        if rng.random() < 0.25:
            state.pos_points.append(_inner_pixel(gt, rng, rng.random() < 0.5))
    elif u < 0.8:
        state.pos_points.append(_inner_pixel(gt, rng, rng.random() < 0.6))
        for _ in range(int(rng.integers(0, 3))):
            state.pos_points.append(_inner_pixel(gt, rng, False))
    else:
        scribble = simulate_scribble(gt, 1, rng=rng, mode="random", warp=0.5)
        state.add_scribble(scribble.mask(gt.shape), 1)
    if rng.random() < p_prev:
        state.prev_prob = corrupt_mask(gt, rng).astype(np.float32)


def correct(
    state: InteractionState,
    pred: np.ndarray,
    gt: np.ndarray,
    rng: np.random.Generator,
    p_scribble: float = 0.3,
) -> bool:
    """Add one corrective click or scribble for prediction ``pred`` ``(S, S)`` bool.

    Returns False when ``pred`` equals ``gt`` (nothing to correct).
    """
    regions = error_regions(pred, gt)
    if not regions:
        return False
    if rng.random() < p_scribble:
        scribble = next_scribble(pred, gt, rng=rng, mode="random", warp=0.5)
        if scribble is not None:
            state.add_scribble(scribble.mask(gt.shape), scribble.label)
            return True
    if rng.random() < 0.8 or len(regions) == 1:
        region = regions[0]
    else:
        sizes = np.array([r.size for r in regions], np.float64)
        region = regions[int(rng.choice(len(regions), p=sizes / sizes.sum()))]
    point = _inner_pixel(region.mask, rng, rng.random() < 0.5)
    (state.pos_points if region.false_negative else state.neg_points).append(point)
    return True


def encode_state(state: InteractionState, image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Network input ``(9, S, S)`` of a sample (see :func:`encode_inputs`)."""
    return encode_inputs(
        image,
        valid=valid,
        box=None if state.box is None else np.asarray(state.box, np.float64),
        pos_points=np.asarray(state.pos_points, np.float64).reshape(-1, 2),
        neg_points=np.asarray(state.neg_points, np.float64).reshape(-1, 2),
        pos_scribble=state.pos_scribble,
        neg_scribble=state.neg_scribble,
        prev_prob=state.prev_prob,
    )
