"""3D propagation of a 2D promptable segmentation through a volume.

Two rules (``PropagationConfig.algorithm``, both in ``docs/models.md``): ``"keyframes"``, the
default, encodes only some slices and interpolates between them
(:mod:`medseg.inference.propagation_keyframes`, sharing tests 3(a)-(c) below); ``"slices"``
visits every slice, by this rule:

1. The prompted slice ``z0`` is segmented from the user's prompt.
2. Going up (``z0 + 1, z0 + 2, ...``) and then down (``z0 - 1, ...``) separately, each slice is
   prompted with the bounding box of the mask accepted on the previous slice, enlarged on
   every side by ``margin`` (10 %) of the box's width/height, at least ``min_margin`` (2)
   pixels, and clipped to the image.
3. A slice's mask is accepted when all of these hold:

   - its area is at least ``min_area`` (4) pixels and at least ``min_area_fraction`` (5 %)
     of the mask area on the prompted slice;
   - at least ``min_overlap`` (30 %) of it overlaps the previous accepted mask (the object
     continues rather than jumping to a neighbour);
   - its stability ``|logits > +1| / |logits > -1|`` (SAM's stability score with offset
     ``stability_offset`` = 1) is at least ``min_stability`` (0.65). Box-prompted SAM models
     still draw a blob when the box holds no object; such blobs are unstable (their logits
     hover near 0), while real structures have sharp edges. The 0.65 was chosen on
     TotalSegmentator CT organs and a BraTS tumour (see ``docs/models.md``).

4. The first rejected slice stops that direction; it and all slices beyond keep no mask.
   ``z_range`` (from ``box3d``) limits the slices visited.

5. **Corrections** (``previous`` given: the volume result being corrected, for clicks or
   scribbles on slice ``z0``): the corrected slice is propagated the same way, but each
   direction stops as soon as a slice's new mask agrees with the previous result there
   (Dice >= ``converge_dice``, 0.9): from that slice on the previous result is kept. When a
   direction stops by rule 3 first, the slices beyond keep the previous result if they lie
   towards the previous result's largest slice (the correction could not reach them), and
   are cleared if they lie away from it (the correction ended a leak).

Objects (several boxes) advance together: one decoder pass per slice for all objects still
active, sharing the slice's embedding.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from medseg.errors import PromptError
from medseg.inference.propagation_keyframes import first_step, propagate_object, towards_core
from medseg.inference.result import UNREACHED_LOGIT
from medseg.metrics.overlap import dice_from_counts, overlap_counts
from medseg.prompts.types import box_from_mask

__all__ = [
    "PropagationConfig",
    "PropagationResult",
    "enlarge_box",
    "propagate",
    "stability_score",
]

SegmentFn = Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray]]
ALGORITHMS = ("keyframes", "slices")


@dataclass(frozen=True)
class PropagationConfig:
    """Parameters of the slice-to-slice propagation rule (module docstring).

    Attributes:
        margin: box enlargement per side, as a fraction of the box's width/height.
        min_margin: minimum enlargement per side in pixels.
        min_area: smallest accepted mask area in pixels.
        min_area_fraction: smallest accepted area as a fraction of the prompted slice's.
        min_overlap: smallest accepted fraction of the mask that overlaps the previous
            slice's accepted mask.
        min_stability: smallest accepted stability score (see the module docstring).
        stability_offset: logit offset of the stability score.
        converge_dice: corrections: the Dice with the previous result at which a direction
            stops and keeps the previous result beyond (rule 5).
        algorithm: ``"keyframes"`` (default: encode keyframes only, interpolate between,
            :mod:`medseg.inference.propagation_keyframes`) or ``"slices"`` (every slice,
            this module's rule; the rule before keyframes).
        first_step_mm: keyframes: the first step from the prompted slice, in millimetres.
        max_step: keyframes: the largest step, in slices.
        grow_dice: keyframes: the step doubles after a keyframe whose mask has at least this
            Dice with the previous keyframe's, else halves.
        max_growth: keyframes: a mask larger than this many times the previous keyframe's
            is rejected (a leak).
        keyframe_margin: keyframes: box enlargement per side (``margin`` of the slice rule).
        correction_reach_mm: keyframes, corrections: a direction stops (keeping the previous
            result beyond) this far from the corrected slice, in mm (10); 0 = no limit.
        refine_changes: keyframes: a keyframe more than one slice away whose mask disagrees
            with the previous keyframe's (Dice < ``grow_dice``) is replaced by the slice at
            half the distance (off: it lowered validation Dice, ``docs/models.md``).
    """

    margin: float = 0.1
    min_margin: float = 2.0
    min_area: int = 4
    min_area_fraction: float = 0.05
    min_overlap: float = 0.3
    min_stability: float = 0.65
    stability_offset: float = 1.0
    converge_dice: float = 0.9
    algorithm: str = "keyframes"
    first_step_mm: float = 3.0
    max_step: int = 8
    grow_dice: float = 0.85
    max_growth: float = 1.3
    keyframe_margin: float = 0.05
    correction_reach_mm: float = 10.0
    refine_changes: bool = False

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise PromptError(f"propagation algorithm must be one of {ALGORITHMS}, "
                              f"got {self.algorithm!r}")  # fmt: skip
        for name, value in dataclasses.asdict(self).items():
            if name != "algorithm" and value < 0:
                raise PromptError(f"propagation {name} must be >= 0, got {value}")
        if self.max_step < 1:
            raise PromptError(f"propagation max_step must be >= 1, got {self.max_step}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PropagationConfig:
        return cls(**json.loads(text))


@dataclass(frozen=True, eq=False)
class PropagationResult:
    """Propagation output for ``N`` objects in a ``(Z, H, W)`` volume.

    Attributes:
        logits: ``(N, Z, H, W)`` float32; unvisited or rejected slices hold UNREACHED_LOGIT.
        scores: ``(N,)`` mean model score over each object's accepted slices.
        ranges: inclusive ``(z_first, z_last)`` of accepted slices per object.
        boxes: per object, ``{z: box}`` of the prompt boxes used on propagated slices.
    """

    logits: np.ndarray
    scores: np.ndarray
    ranges: tuple[tuple[int, int], ...]
    boxes: tuple[dict[int, tuple[float, ...]], ...]


def enlarge_box(
    box: tuple[int, int, int, int], shape: tuple[int, int], margin: float, min_margin: float
) -> tuple[float, float, float, float]:
    """Grow a box ``(x0, y0, x1, y1)`` by ``max(margin * size, min_margin)`` per side and clip
    it to an image of ``shape`` ``(H, W)`` (coordinates ``0..W-1``, ``0..H-1``)."""
    x0, y0, x1, y1 = box
    h, w = shape
    dx = max(margin * (x1 - x0 + 1), min_margin)
    dy = max(margin * (y1 - y0 + 1), min_margin)
    return (
        float(max(0.0, x0 - dx)),
        float(max(0.0, y0 - dy)),
        float(min(w - 1.0, x1 + dx)),
        float(min(h - 1.0, y1 + dy)),
    )


def stability_score(logits: np.ndarray, offset: float = 1.0) -> float:
    """SAM's stability score: ``|logits > offset| / |logits > -offset|`` (1.0 when empty)."""
    loose = int(np.count_nonzero(logits > -offset))
    return 1.0 if loose == 0 else int(np.count_nonzero(logits > offset)) / loose


def _accept(logits: np.ndarray, prev: np.ndarray, ref_area: int, cfg: PropagationConfig) -> bool:
    mask = logits > 0
    area = int(mask.sum())
    if area < max(cfg.min_area, cfg.min_area_fraction * ref_area):
        return False
    if (mask & prev).sum() < cfg.min_overlap * area:
        return False
    return stability_score(logits, cfg.stability_offset) >= cfg.min_stability


def _agrees(mask: np.ndarray, previous: np.ndarray, threshold: float) -> bool:
    """Dice of two boolean masks >= ``threshold`` (two empty masks do not agree)."""
    inter, n_mask, n_previous = overlap_counts(mask, previous)
    return n_mask + n_previous > 0 and dice_from_counts(inter, n_mask, n_previous) >= threshold


def _sweep(
    segment: SegmentFn,
    out: np.ndarray,
    state: dict[str, list],
    span: tuple[int, int, int],
    cfg: PropagationConfig,
    tick: Callable[[], None],
    previous: np.ndarray | None = None,
) -> None:
    """Propagate from ``start`` (exclusive) towards ``stop`` (inclusive) by ``step``,
    ``span = (start, stop, step)``; with ``previous`` ``(N, Z, H, W)`` logits, rule 5."""
    start, stop, step = span
    n, _, h, w = out.shape
    prev = [out[i, start] > 0 for i in range(n)]
    ref = [int(p.sum()) for p in prev]
    active = [r >= max(cfg.min_area, 1) for r in ref]
    keep = [previous is not None and towards_core(previous[i], start, step) for i in range(n)]
    for i in range(n):
        if not active[i] and keep[i]:
            _keep_previous(out, previous, i, start + step, stop, step)
    for z in range(start + step, stop + step, step):
        idx = [i for i in range(n) if active[i]]
        if not idx:
            break
        boxes = []
        for i in idx:
            tight = box_from_mask(prev[i])
            boxes.append(enlarge_box(tight, (h, w), cfg.margin, cfg.min_margin))
        logits, scores = segment(z, np.asarray(boxes, np.float64))
        tick()
        for j, i in enumerate(idx):
            if not _accept(logits[j], prev[i], ref[i], cfg):
                active[i] = False
                if keep[i]:
                    _keep_previous(out, previous, i, z, stop, step)
                continue
            out[i, z] = logits[j]
            prev[i] = logits[j] > 0
            state["boxes"][i][z] = boxes[j]
            state["scores"][i].append(float(scores[j]))
            if previous is not None and _agrees(prev[i], previous[i, z] > 0, cfg.converge_dice):
                active[i] = False
                _keep_previous(out, previous, i, z + step, stop, step)


def _reach(spacing_z: float, cfg: PropagationConfig) -> int:
    """``correction_reach_mm`` in slices (at least 1; no limit when 0)."""
    if cfg.correction_reach_mm <= 0 or spacing_z <= 0:
        return 1 << 30
    return max(1, round(cfg.correction_reach_mm / spacing_z))


def _keyframes(
    segment: SegmentFn,
    out: np.ndarray,
    state: dict[str, list],
    span: tuple[int, int, int, int, int],
    cfg: PropagationConfig,
    tick: Callable[[], None],
    previous: np.ndarray | None,
) -> None:
    """The keyframe rule (:mod:`medseg.inference.propagation_keyframes`), object by object;
    ``span = (start, z_lo, z_hi, first step, correction reach)`` (steps in slices)."""
    start, z_lo, z_hi, step0, reach = span

    def counted(z: int, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tick()
        return segment(z, boxes)

    for i in range(out.shape[0]):
        ref = int((out[i, start] > 0).sum())

        def accept(logits: np.ndarray, prev: np.ndarray, prev_area: int, ref: int = ref) -> bool:
            area = int((logits > 0).sum())
            return area <= cfg.max_growth * prev_area and _accept(logits, prev, ref, cfg)

        prev_i = None if previous is None else previous[i]
        boxes, scores = propagate_object(
            counted, out[i], start, (z_lo, z_hi), step0, cfg, accept, prev_i, reach
        )
        state["boxes"][i].update(boxes)
        state["scores"][i].extend(scores)


def _keep_previous(
    out: np.ndarray, previous: np.ndarray, i: int, first: int, stop: int, step: int
) -> None:
    """Copy object ``i``'s previous logits into ``out`` from slice ``first`` to ``stop``."""
    if (first - stop) * step > 0:
        return
    lo, hi = sorted((first, stop))
    out[i, lo : hi + 1] = previous[i, lo : hi + 1]


def _ranges(logits: np.ndarray, start: int) -> list[list[int]]:
    """Inclusive ``[first, last]`` slice with a mask per object (``[start, start]`` if none)."""
    ranges = []
    for obj in logits > 0:
        zs = np.flatnonzero(obj.reshape(obj.shape[0], -1).any(axis=1))
        ranges.append([int(zs[0]), int(zs[-1])] if zs.size else [start, start])
    return ranges


def propagate(
    segment: SegmentFn,
    start_logits: np.ndarray,
    start_scores: np.ndarray,
    start: int,
    depth: int,
    z_range: tuple[int, int] | None = None,
    config: PropagationConfig | None = None,
    progress: bool = False,
    previous: np.ndarray | None = None,
    spacing: tuple[float, ...] | None = None,
) -> PropagationResult:
    """Propagate ``N`` objects from slice ``start`` through a volume of ``depth`` slices.

    Args:
        segment: ``segment(z, boxes (M, 4)) -> (logits (M, H, W), scores (M,))`` segments
            ``M`` boxes on slice ``z`` in one call.
        start_logits: ``(N, H, W)`` logits of the prompted slice.
        start_scores: ``(N,)`` scores of the prompted slice.
        start: the prompted slice index.
        depth: number of slices ``Z``.
        z_range: inclusive slice range to visit (default: the whole volume).
        config: the rule's parameters (default :class:`PropagationConfig`).
        progress: show a tqdm progress bar over visited slices.
        previous: ``(N, Z, H, W)`` logits of the result being corrected (rule 5), or None.
        spacing: voxel size ``(z, y, x)`` in mm (keyframes: the first step), None = 1 mm.
    """
    from tqdm.auto import tqdm

    cfg = config or PropagationConfig()
    z_lo, z_hi = z_range if z_range is not None else (0, depth - 1)
    if not (0 <= z_lo <= start <= z_hi < depth):
        raise PromptError(f"start slice {start} is outside the slice range {z_lo}..{z_hi}")
    n, h, w = start_logits.shape
    if previous is not None and previous.shape != (n, depth, h, w):
        raise PromptError(f"previous result shape {previous.shape} is not {(n, depth, h, w)}")
    out = np.full((n, depth, h, w), UNREACHED_LOGIT, np.float32)
    out[:, start] = start_logits
    state: dict[str, list] = {
        "scores": [[float(s)] for s in start_scores],
        "boxes": [{} for _ in range(n)],
    }
    with tqdm(
        total=z_hi - z_lo, desc="propagating", unit="slice", disable=None if progress else True
    ) as bar:
        if cfg.algorithm == "keyframes":
            sz = float(spacing[0]) if spacing else 1.0
            span = (start, z_lo, z_hi, first_step(sz, cfg.first_step_mm), _reach(sz, cfg))
            _keyframes(segment, out, state, span, cfg, bar.update, previous)
        else:
            _sweep(segment, out, state, (start, z_hi, 1), cfg, bar.update, previous)
            _sweep(segment, out, state, (start, z_lo, -1), cfg, bar.update, previous)
    state["ranges"] = _ranges(out, start)
    return PropagationResult(
        logits=out,
        scores=np.array([np.mean(s) for s in state["scores"]], np.float32),
        ranges=tuple((int(a), int(b)) for a, b in state["ranges"]),
        boxes=tuple(state["boxes"]),
    )
