"""Body-relative anatomical prior for text prompts on CT/MR slices.

Where an organ lies in an axial slice, relative to the bounding box of the body, is much
the same from patient to patient and survives any intensity window: the spleen sits in the
posterior part of the body on the patient's left, the liver anterior-right, and so on. The
prior (``medseg/assets/text_prior.json``, built by ``benchmarks/build_text_prior.py`` from
the labelled CT/MR volumes of the text head's training data) holds, per vocabulary target,
a few representative boxes in **body coordinates** (``(x0, y0, x1, y1)`` in ``[0, 1]`` of
the body's box, axial view in the radiological convention: rows anterior to posterior,
columns patient right to left); a two-sided target ("kidney") is the union of its sides.

:func:`body_box` finds the body (threshold, opening, the largest component that is not the
outside of a scanner's field-of-view circle, holes filled); :meth:`AnatomyPrior.candidates`
maps the target's boxes into image pixels. :func:`prior_mask` decodes every candidate box
with LiteMedSAM in one batched pass and keeps the best-scoring mask (decoder IoU times the
agreement of the mask's own box with the prompt box), or none when even that is weak.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from medseg.errors import ModelError

__all__ = [
    "PRIOR_ASSET",
    "PRIOR_FORMAT",
    "AnatomyPrior",
    "PriorChoice",
    "answer",
    "body_box",
    "body_mask",
    "box_iou",
    "edge_contrast",
    "load_prior",
    "normalise_box",
    "prior_mask",
    "slice_flips",
    "to_pixels",
]

log = logging.getLogger(__name__)

PRIOR_ASSET = "text_prior.json"
PRIOR_FORMAT = "medseg-text-prior"
BODY_LEVEL = 0.03  # unit intensity above which a pixel may be body (air is ~0)
MIN_BODY_FRACTION = 0.05  # a body smaller than this share of the image is not trusted
MIN_CONTRAST = 0.02  # a prior mask must differ from its surroundings by this much (unit)


def _disc(r: int) -> np.ndarray:
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (yy**2 + xx**2) <= r * r


def _otsu(img: np.ndarray) -> float:
    """Otsu's threshold of ``img`` values in ``[0, 1]`` (64 bins)."""
    hist, edges = np.histogram(np.clip(img, 0, 1), bins=64, range=(0, 1))
    p = hist / max(hist.sum(), 1)
    w = np.cumsum(p)
    mu = np.cumsum(p * edges[:-1])
    between = (mu[-1] * w - mu) ** 2 / np.maximum(w * (1 - w), 1e-12)
    between = between[:-1]
    ties = np.flatnonzero(between >= between.max() * (1 - 1e-6))
    return float(edges[round(ties.mean()) + 1])  # the middle of a flat optimum


def _border_level(img: np.ndarray) -> float:
    """25th percentile of the outer 3 % frame of ``img`` (the background, where the body
    does not fill the frame)."""
    b = max(1, round(0.03 * min(img.shape)))
    frame = np.concatenate([img[:b].ravel(), img[-b:].ravel(), img[:, :b].ravel(),
                            img[:, -b:].ravel()])  # fmt: skip
    return float(np.percentile(frame, 25))


def _without_flat_padding(img: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """``fg`` minus the flat padding inside a scanner's field-of-view circle: the pixels of
    the most common 8-bit value (+-1) of the largest component connected to its rim,
    when they make up at least half of the rim and more than 10 % of the component, and
    leave at least 10 % inside (air stored as one constant grey)."""
    comps, n = ndimage.label(fg)
    if n == 0:
        return fg
    big = comps == int(np.argmax(np.bincount(comps.ravel())[1:]) + 1)
    values = np.round(img * 255).astype(int)
    mode = np.bincount(values[big]).argmax()
    flat, _ = ndimage.label(big & (np.abs(values - mode) <= 1))
    rim = big & ~ndimage.binary_erosion(big)
    touching = np.setdiff1d(np.unique(flat[rim]), [0])
    padding = np.isin(flat, touching)
    size, inside = padding.sum(), (big & ~padding).sum()
    if (
        (padding & rim).sum() < 0.5 * rim.sum()
        or size <= 0.1 * big.sum()
        or inside < 0.1 * big.sum()
    ):
        return fg
    return fg & ~padding


def body_mask(unit: np.ndarray) -> np.ndarray | None:
    """The body in a normalised ``(H, W)`` slice in ``[0, 1]`` (bool ``(H, W)``), or None.

    Pixels above ``BODY_LEVEL`` (or just above the background of the image's outer frame,
    at most 0.4 x Otsu's threshold: noisy MR backgrounds) after a 3 x 3 median, minus the
    flat grey padding some scanners store inside the field-of-view circle; closed, holes
    filled, opened with a disc of ~1.5 % of the image; of the components, the largest that
    does not hold two or more image corners wins. Works alike on 8-bit windowed PNG slices
    and windowed HU volumes, since both put air near 0.
    """
    img = np.asarray(unit, np.float32)
    if img.ndim != 2 or min(img.shape) < 8:
        return None
    img = ndimage.median_filter(img, size=3)
    level = max(BODY_LEVEL, min(_border_level(img) + 0.03, 0.4 * _otsu(img)))
    fg = _without_flat_padding(img, img > level)
    r = max(1, round(0.015 * max(img.shape)))
    pad = np.pad(fg, 2 * r)
    pad = ndimage.binary_fill_holes(ndimage.binary_closing(pad, structure=_disc(r)))
    fg = ndimage.binary_opening(pad, structure=_disc(r))[2 * r : -2 * r, 2 * r : -2 * r]
    comps, n = ndimage.label(fg)
    if n == 0:
        return None
    sizes = np.bincount(comps.ravel(), minlength=n + 1)
    corners = comps[[0, 0, -1, -1], [0, -1, 0, -1]]
    order = np.argsort(sizes[1:])[::-1] + 1
    pick = next((int(c) for c in order if int((corners == c).sum()) < 2), int(order[0]))
    if sizes[pick] < MIN_BODY_FRACTION * img.size:
        return None
    return ndimage.binary_fill_holes(comps == pick)


def body_box(unit: np.ndarray) -> tuple[float, float, float, float] | None:
    """``(x0, y0, x1, y1)`` pixel box (exclusive end) of :func:`body_mask`, or None."""
    mask = body_mask(unit)
    if mask is None:
        return None
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def normalise_box(box: Any, body: Any) -> tuple[float, float, float, float]:
    """A pixel box ``(x0, y0, x1, y1)`` in body coordinates (``body`` = the body's box)."""
    bx0, by0, bx1, by1 = (float(v) for v in body)
    w, h = max(bx1 - bx0, 1.0), max(by1 - by0, 1.0)
    x0, y0, x1, y1 = (float(v) for v in box)
    return (x0 - bx0) / w, (y0 - by0) / h, (x1 - bx0) / w, (y1 - by0) / h


def to_pixels(boxes: np.ndarray, body: Any, shape: tuple[int, int]) -> np.ndarray:
    """Body-coordinate boxes ``(K, 4)`` as pixel boxes ``(K, 4)`` clipped to ``shape``."""
    bx0, by0, bx1, by1 = (float(v) for v in body)
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = np.stack([bx0 + b[:, 0] * (bx1 - bx0), by0 + b[:, 1] * (by1 - by0),
                    bx0 + b[:, 2] * (bx1 - bx0), by0 + b[:, 3] * (by1 - by0)], 1)  # fmt: skip
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, shape[1])
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, shape[0])
    return out


def box_iou(a: Any, b: Any) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes (0 when either is empty)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class AnatomyPrior:
    """The prior asset: per target id, body-coordinate boxes ``(K, 4)`` and a count.

    Args:
        doc: the parsed ``text_prior.json`` (``{"format", "targets": {id: {"boxes",
            "slices"}}, "sides": {two-sided id: [side ids]}, "min_score"}``).
    """

    def __init__(self, doc: dict[str, Any]) -> None:
        if not isinstance(doc, dict) or doc.get("format") != PRIOR_FORMAT:
            raise ModelError(f"not a medseg text prior ({PRIOR_FORMAT})")
        self.targets: dict[str, dict[str, Any]] = dict(doc["targets"])
        # two-sided targets ("kidney") answered as the union of their sides' answers
        self.sides: dict[str, list[str]] = {k: list(v) for k, v in doc.get("sides", {}).items()}
        self.min_score = float(doc.get("min_score", 0.0))
        self.info: dict[str, Any] = dict(doc.get("info", {}))

    def has(self, target_id: str) -> bool:
        """True when the prior holds boxes for ``target_id``."""
        return target_id in self.targets

    def candidates(self, target_id: str, body: Any, shape: tuple[int, int],
                   flip_x: tuple[bool, ...] = (False,),
                   flip_y: tuple[bool, ...] = (False,)) -> np.ndarray:  # fmt: skip
        """Pixel boxes ``(K * len(flip_x) * len(flip_y), 4)`` of ``target_id`` in an image of
        ``shape`` ``(H, W)`` whose body box is ``body``, once per flip: ``flip_x`` True =
        the image's columns run patient left to right (the prior's frame mirrored),
        ``flip_y`` True = its rows run posterior to anterior (upside down)."""
        boxes = np.asarray(self.targets[target_id]["boxes"], np.float64).reshape(-1, 4)
        out = []
        for fx in flip_x:
            bx = (
                np.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], 1)
                if fx
                else boxes
            )
            for fy in flip_y:
                out.append(
                    np.stack([bx[:, 0], 1 - bx[:, 3], bx[:, 2], 1 - bx[:, 1]], 1) if fy else bx
                )
        return to_pixels(np.concatenate(out), body, shape)


@lru_cache(maxsize=4)
def _load(path: str) -> AnatomyPrior:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the text prior {path}: {exc}") from exc
    return AnatomyPrior(doc)


def load_prior(path: str | Path | None = None) -> AnatomyPrior | None:
    """The prior at ``path`` (None: the bundled asset, or None when it is not installed)."""
    if path is None:
        bundled = Path(str(resources.files("medseg").joinpath("assets", PRIOR_ASSET)))
        if not bundled.is_file():
            return None
        path = bundled
    return _load(str(path))


@dataclass(frozen=True)
class PriorChoice:
    """The prior's answer on one slice: logits ``(H, W)``, the score, the prompt box."""

    logits: np.ndarray
    score: float
    box: tuple[float, float, float, float]


def slice_flips(image: Any) -> tuple[tuple[bool, ...], tuple[bool, ...]] | None:
    """The ``(flip_x, flip_y)`` options of :meth:`AnatomyPrior.candidates` for the slices of
    ``image`` (a :class:`medseg.io.image.Image`): a 2D image has no orientation, so all four;
    a volume's axial slices (``array[z]``) are flipped as its direction matrix says; None
    when its ``z`` slices are not axial (no prior)."""
    from medseg.io.orientation import view_axes

    if image.ndim == 2:
        return (False, True), (False, True)
    ax = view_axes(image, "axial")
    if ax["depth"] != 0 or ax["rows"] != 1:
        return None
    return (bool(ax["flip_cols"]),), (bool(ax["flip_rows"]),)


def answer(prior: AnatomyPrior | None, image: Any, unit: np.ndarray, lite: Any, embedding: Any,
           target_id: str, sided: bool) -> PriorChoice | None:  # fmt: skip
    """The prior's mask of ``target_id`` on one slice (``unit``: its normalised ``(H, W)``
    pixels, ``embedding``: its LiteMedSAM embedding), or None (no prior for the target, no
    body, or no candidate good enough). ``sided``: a left/right target on a 2D image is not
    tried mirrored (its side is read in radiological display, as the side rule does). A
    mask whose median differs from its surroundings' by less than ``MIN_CONTRAST`` (a blob
    on a featureless region) is no answer."""
    if prior is None:
        return None
    if target_id in prior.sides:
        parts = [answer(prior, image, unit, lite, embedding, t, sided)
                 for t in prior.sides[target_id]]  # fmt: skip
        found = [c for c in parts if c is not None]
        if not found:
            return None
        logits = np.max(np.stack([c.logits for c in found]), axis=0)
        return PriorChoice(logits, max(c.score for c in found), found[0].box)
    if not prior.has(target_id):
        return None
    flips = slice_flips(image)
    body = body_box(unit)
    if flips is None or body is None:
        return None
    flip_x, flip_y = flips
    if sided and image.ndim == 2:
        flip_x = (False,)
    boxes = prior.candidates(target_id, body, unit.shape, flip_x, flip_y)
    choice = prior_mask(lite, embedding, boxes, prior.min_score)
    if choice is None or edge_contrast(unit, choice.logits > 0) < MIN_CONTRAST:
        return None  # a blob on a featureless region is a guess, not a structure
    return choice


def edge_contrast(unit: np.ndarray, mask: np.ndarray, width: int = 3) -> float:
    """``|median inside - median of a ring width pixels outside|`` of ``mask`` on ``unit``
    ``(H, W)`` (0 for an empty mask or one that fills the image)."""
    if not mask.any():
        return 0.0
    ring = ndimage.binary_dilation(mask, iterations=width) & ~mask
    if not ring.any():
        return 0.0
    return float(abs(np.median(unit[mask]) - np.median(unit[ring])))


def prior_mask(
    lite: Any, embedding: Any, boxes: np.ndarray, min_score: float
) -> PriorChoice | None:
    """Decode every candidate pixel box ``(K, 4)`` with LiteMedSAM (one batched pass) and
    keep the one whose score, decoder IoU x IoU of the mask's own box with the prompt box,
    is highest; None when it is below ``min_score`` or every mask is empty."""
    from medseg.prompts.types import PromptSet

    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    keep = (boxes[:, 2] - boxes[:, 0] >= 2) & (boxes[:, 3] - boxes[:, 1] >= 2)
    if not keep.any():
        return None
    boxes = boxes[keep]
    d = lite.decode(embedding, PromptSet(boxes=boxes))
    best: PriorChoice | None = None
    for k in range(len(boxes)):
        logits = d.logits[k, 0]
        ys, xs = np.nonzero(logits > 0)
        if not len(ys):
            continue
        own = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        score = float(d.scores[k, 0]) * box_iou(own, boxes[k])
        if best is None or score > best.score:
            best = PriorChoice(logits, score, tuple(float(v) for v in boxes[k]))  # type: ignore[arg-type]
    if best is None or best.score < min_score:
        return None
    return best
