"""Boxes and corrective clicks from a ground-truth mask (see :mod:`medseg.prompts.simulation`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from medseg.errors import PromptError

__all__ = [
    "Click",
    "ClickConfig",
    "ClickSimulator",
    "ErrorRegion",
    "target_box",
    "simulate_box",
    "error_regions",
    "region_distance",
    "next_click",
    "as_mask",
]


@dataclass(frozen=True)
class Click:
    """One click: ``point`` ``(x, y[, z])`` in pixel indices; label 1 positive, 0 negative."""

    point: tuple[int, ...]
    label: int

    @property
    def index(self) -> tuple[int, ...]:
        """The array index of the clicked pixel: ``(y, x)`` or ``(z, y, x)``."""
        return tuple(reversed(self.point))

    def to_dict(self) -> dict[str, object]:
        return {"point": list(self.point), "label": self.label}


@dataclass(frozen=True)
class ClickConfig:
    """How :func:`next_click` picks a click (see the module docstring).

    Attributes:
        error_regions: ``"separate"``: components of false negatives and false positives
            apart; ``"combined"``: components of ``pred != gt`` (CVPR 2025 code).
        tie_break: ``"first"`` (raster order, RITM) or ``"random"`` among equal maxima.
    """

    error_regions: Literal["separate", "combined"] = "separate"
    tie_break: Literal["first", "random"] = "first"

    def __post_init__(self) -> None:
        if self.error_regions not in ("separate", "combined"):
            raise PromptError(
                f"error_regions must be 'separate' or 'combined', got {self.error_regions!r}"
            )
        if self.tie_break not in ("first", "random"):
            raise PromptError(f"tie_break must be 'first' or 'random', got {self.tie_break!r}")


@dataclass(frozen=True, eq=False)
class ErrorRegion:
    """One connected error region: its size, kind and bounding box.

    Attributes:
        size: number of pixels.
        false_negative: True for a missed region, False for a false positive.
        bbox: the region's bounding box as one slice per array axis.
        labels: the component label array the region was found in; region = ``labels == index``.
        index: the region's component label.
    """

    size: int
    false_negative: bool
    bbox: tuple[slice, ...]
    labels: np.ndarray
    index: int

    @property
    def mask(self) -> np.ndarray:
        """Boolean mask of the region, full array shape."""
        out = np.zeros(self.labels.shape, dtype=bool)
        out[self.bbox] = self.labels[self.bbox] == self.index
        return out


def as_mask(mask: np.ndarray, name: str) -> np.ndarray:
    """``mask`` as a bool array; ``PromptError`` unless it is 2D or 3D."""
    arr = np.asarray(mask)
    if arr.ndim not in (2, 3):
        raise PromptError(f"{name} must be a 2D (H, W) or 3D (Z, Y, X) mask, got shape {arr.shape}")
    return arr.astype(bool, copy=False)


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, g = as_mask(pred, "prediction"), as_mask(gt, "ground truth")
    if p.shape != g.shape:
        raise PromptError(f"prediction shape {p.shape} does not match ground truth {g.shape}")
    return p, g


def target_box(mask: np.ndarray) -> tuple[int, ...]:
    """Tight box of a 2D mask ``(xmin, ymin, xmax, ymax)`` or 3D ``(x0, y0, z0, x1, y1, z1)``.

    Coordinates are the inclusive indices of the extreme foreground pixels. Raises
    ``PromptError`` for an empty mask.
    """
    m = as_mask(mask, "mask")
    idx = np.argwhere(m)
    if idx.size == 0:
        raise PromptError("cannot take the box of an empty mask")
    lo, hi = idx.min(axis=0)[::-1], idx.max(axis=0)[::-1]  # (x, y[, z])
    return tuple(int(v) for v in (*lo, *hi))


def simulate_box(
    mask: np.ndarray, jitter: float = 0.0, rng: np.random.Generator | None = None
) -> tuple[int, ...]:
    """The target's box with each side moved by up to ``jitter`` x the box size.

    Each of the ``2 * D`` sides moves independently by ``round(u * jitter * size)`` pixels,
    ``u ~ Uniform(-1, 1)``, ``size`` = the box extent along that axis in pixels
    (``max - min + 1``). The box is then clipped to the image and kept non-empty.
    """
    if not 0.0 <= jitter <= 1.0:
        raise PromptError(f"box jitter must be in [0, 1], got {jitter}")
    box = np.array(target_box(mask), dtype=np.int64)
    if jitter == 0.0:
        return tuple(int(v) for v in box)
    if rng is None:
        raise PromptError("a random generator is needed for a jittered box")
    d = box.size // 2
    lo, hi = box[:d], box[d:]
    size = hi - lo + 1
    u = rng.uniform(-1.0, 1.0, size=2 * d)
    upper = np.array(np.asarray(mask).shape[::-1]) - 1  # (W-1, H-1[, Z-1])
    new_lo = np.clip(lo + np.round(u[:d] * jitter * size).astype(np.int64), 0, upper)
    new_hi = np.clip(hi + np.round(u[d:] * jitter * size).astype(np.int64), 0, upper)
    new_hi = np.maximum(new_hi, np.minimum(new_lo + 1, upper))
    new_lo = np.minimum(new_lo, new_hi - 1).clip(0)
    return tuple(int(v) for v in (*new_lo, *new_hi))


def error_regions(
    pred: np.ndarray, gt: np.ndarray, mode: Literal["separate", "combined"] = "separate"
) -> list[ErrorRegion]:
    """Connected error regions of ``pred`` against ``gt``, largest first.

    Full connectivity (8 neighbours in 2D, 26 in 3D). Order: size descending, then false
    negatives before false positives, then raster order of the region's first pixel. In
    ``"combined"`` mode a region is a false negative when its first pixel is one.
    """
    from scipy import ndimage

    p, g = _pair(pred, gt)
    structure = np.ones((3,) * p.ndim, dtype=bool)
    groups = [(g & ~p, True), (p & ~g, False)] if mode == "separate" else [(p != g, None)]
    found: list[tuple[int, int, int, ErrorRegion]] = []
    for err, is_fn in groups:
        labels, n = ndimage.label(err, structure=structure)
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel())
        for k, bbox in enumerate(ndimage.find_objects(labels), start=1):
            local = np.unravel_index(int(np.argmax(labels[bbox] == k)), labels[bbox].shape)
            first_index = tuple(int(s.start + i) for s, i in zip(bbox, local, strict=True))
            first = int(np.ravel_multi_index(first_index, labels.shape))
            fn = bool(g[first_index]) if is_fn is None else is_fn
            region = ErrorRegion(int(sizes[k]), fn, bbox, labels, k)
            found.append((-region.size, 0 if fn else 1, first, region))
    found.sort(key=lambda t: t[:3])
    return [t[3] for t in found]


def region_distance(region: np.ndarray, sampling: Sequence[float] | None = None) -> np.ndarray:
    """Euclidean distance of each region pixel to the region's border (0 outside).

    The region is cropped to its bounding box and padded with one layer of background, so
    the image border counts as a border. Cropping is exact: the nearest outside pixel of
    any region pixel is never further than the padding layer. ``sampling`` gives the pixel
    size per array axis (default 1, distances in pixels).
    """
    from scipy import ndimage

    r = as_mask(region, "region")
    out = np.zeros(r.shape, dtype=np.float64)
    idx = np.argwhere(r)
    if idx.size == 0:
        return out
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    dist = ndimage.distance_transform_edt(np.pad(r[crop], 1), sampling=sampling)
    out[crop] = dist[(slice(1, -1),) * r.ndim]
    return out


def _pick_max(dist: np.ndarray, tie_break: str, rng: np.random.Generator | None) -> tuple[int, ...]:
    best = np.flatnonzero(dist == dist.max())
    if tie_break == "random" and best.size > 1:
        if rng is None:
            raise PromptError("tie_break='random' needs a random generator")
        flat = int(best[rng.integers(best.size)])
    else:
        flat = int(best[0])
    return tuple(int(v) for v in np.unravel_index(flat, dist.shape))


def next_click(
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    clicked: np.ndarray | None = None,
    config: ClickConfig = ClickConfig(),
    rng: np.random.Generator | None = None,
    sampling: Sequence[float] | None = None,
) -> Click | None:
    """The next corrective click for prediction ``pred`` against ground truth ``gt``.

    Args:
        pred, gt: boolean masks of the same 2D ``(H, W)`` or 3D ``(Z, Y, X)`` shape; an
            all-false ``pred`` gives the first click (the target's innermost pixel).
        clicked: boolean mask of pixels clicked before; they are never clicked again.
        config: region and tie-break rules.
        rng: random generator (needed only for ``tie_break="random"``).
        sampling: pixel size per array axis for the distance transform (default: pixels).

    Returns:
        The click, or None when no unclicked error pixel is left.
    """
    p, g = _pair(pred, gt)
    if clicked is not None and np.shape(clicked) != p.shape:
        raise PromptError(f"clicked mask shape {np.shape(clicked)} does not match {p.shape}")
    for region in error_regions(p, g, config.error_regions):
        dist = region_distance(region.mask, sampling)
        if clicked is not None:
            dist[np.asarray(clicked, dtype=bool)] = 0.0
        if dist.max() <= 0.0:
            continue
        index = _pick_max(dist, config.tie_break, rng)
        label = 1 if g[index] else 0
        return Click(point=tuple(reversed(index)), label=label)
    return None


@dataclass
class ClickSimulator:
    """Clicks for one target over several steps; remembers clicked pixels.

    ``sim.next(pred)`` returns the next :class:`Click` (or None when nothing is left to
    correct) and appends it to ``sim.clicks``.
    """

    gt: np.ndarray
    config: ClickConfig = field(default_factory=ClickConfig)
    rng: np.random.Generator | None = None
    sampling: Sequence[float] | None = None
    clicks: list[Click] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gt = as_mask(self.gt, "ground truth")
        if not self.gt.any():
            raise PromptError("ground truth mask is empty: there is nothing to click on")
        self._clicked = np.zeros(self.gt.shape, dtype=bool)

    def next(self, pred: np.ndarray | None = None) -> Click | None:
        """Next click against ``pred`` (None or all false for the first click)."""
        p = np.zeros_like(self.gt) if pred is None else pred
        click = next_click(
            p,
            self.gt,
            clicked=self._clicked,
            config=self.config,
            rng=self.rng,
            sampling=self.sampling,
        )
        if click is not None:
            self._clicked[click.index] = True
            self.clicks.append(click)
        return click

    @property
    def points(self) -> list[tuple[int, ...]]:
        return [c.point for c in self.clicks]

    @property
    def labels(self) -> list[int]:
        return [c.label for c in self.clicks]
