"""Scribble shapes besides the centre line: random lines, contour fragments, random warping.

Helpers of :func:`medseg.prompts.simulation.scribbles.simulate_scribble` (ScribblePrompt's
"lines, centre lines, contour fragments, randomly warped"). Every path is an ``(N, ndim)``
int array of *array indices* (``(y, x)`` in 2D, ``(z, y, x)`` in 3D) whose consecutive rows
are 8- (2D) or 26- (3D) neighbours, and every pixel of it lies inside the region it was
drawn in. Randomness comes only from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from medseg.errors import PromptError
from medseg.prompts.simulation.clicks import region_distance

__all__ = ["ScribbleShapeConfig", "line_path", "contour_path", "warp_path", "connect_points"]

_TRIES = 8  # random directions tried per line segment before the walk stops


@dataclass(frozen=True)
class ScribbleShapeConfig:
    """Parameters of the non-centre-line scribble shapes and of random warping.

    Attributes:
        line_segments: ``(min, max)`` number of segments of a random-line polyline, >= 1.
        line_length: ``(min, max)`` length of each segment, as a fraction of the largest side
            of the region's bounding box, > 0; a segment stops where it would leave the region.
        contour_inset: ``(min, max)`` pixels (integers >= 0) a contour fragment is moved
            inward: the contour is that of the region pixels more than this far from its
            border (smaller when that set is empty).
        contour_fraction: ``(min, max)`` length of a contour fragment as a fraction of its
            contour, in ``(0, 1]``.
        warp_sigma: smoothness of the random displacement field (Gaussian sigma, pixels), > 0.
        warp_amplitude: largest displacement of a warped scribble point, in pixels, >= 0.
        mode_weights: relative probabilities of ``"centerline"``, ``"line"``, ``"contour"``
            when ``mode="random"``; >= 0 with a positive sum.
    """

    line_segments: tuple[int, int] = (1, 3)
    line_length: tuple[float, float] = (0.2, 0.6)
    contour_inset: tuple[int, int] = (1, 3)
    contour_fraction: tuple[float, float] = (0.15, 0.5)
    warp_sigma: float = 6.0
    warp_amplitude: float = 3.0
    mode_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        checks = {
            "line_segments": self.line_segments[0] >= 1,
            "line_length": self.line_length[0] > 0,
            "contour_inset": self.contour_inset[0] >= 0,
            "contour_fraction": self.contour_fraction[0] > 0 and self.contour_fraction[1] <= 1,
        }
        for name, ok in checks.items():
            lo, hi = getattr(self, name)
            if not ok or lo > hi:
                raise PromptError(f"scribble {name} must be an ordered valid range, got {(lo, hi)}")
        if not self.warp_sigma > 0 or not self.warp_amplitude >= 0:
            raise PromptError(
                f"scribble warp_sigma must be > 0 and warp_amplitude >= 0, "
                f"got {self.warp_sigma}, {self.warp_amplitude}"
            )
        w = np.asarray(self.mode_weights, np.float64)
        if w.shape != (3,) or np.any(w < 0) or not w.sum() > 0:
            raise PromptError(
                f"scribble mode_weights must be 3 weights >= 0 with a positive sum, "
                f"got {self.mode_weights}"
            )


def connect_points(points: np.ndarray) -> np.ndarray:
    """Rasterise the polyline through ``points`` ``(N, ndim)`` (array indices) into a path
    ``(M, ndim)`` of neighbouring pixels; repeated consecutive points are merged."""
    from skimage.draw import line_nd

    parts = [points[:1]]
    for a, b in pairwise(points):
        if np.array_equal(a, b):
            continue
        parts.append(np.stack(line_nd(a, b, endpoint=True), axis=1)[1:])
    return _dedup(np.concatenate(parts).astype(np.int64))


def _dedup(points: np.ndarray) -> np.ndarray:
    """``points`` ``(N, ndim)`` without rows equal to the row before them."""
    keep = np.concatenate([[True], np.any(np.diff(points, axis=0) != 0, axis=1)])
    return points[keep]


def _longest_run(inside: np.ndarray) -> tuple[int, int]:
    """``(start, stop)`` of the longest run of True in the 1D bool array (``(0, 0)`` if none)."""
    steps = np.diff(np.concatenate([[0], inside.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(steps == 1), np.flatnonzero(steps == -1)
    if starts.size == 0:
        return 0, 0
    i = int(np.argmax(stops - starts))
    return int(starts[i]), int(stops[i])


def _segment(
    region: np.ndarray, start: np.ndarray, length: float, rng: np.random.Generator
) -> np.ndarray:
    """Pixels ``(K, ndim)`` after ``start`` on a straight line of ``length`` in a random
    direction, up to (not including) the first pixel outside ``region``; K may be 0."""
    from skimage.draw import line_nd

    direction = rng.standard_normal(region.ndim)
    direction /= max(float(np.linalg.norm(direction)), 1e-12)
    stop = np.clip(start + length * direction, 0, np.array(region.shape) - 1)
    pts = _dedup(np.stack(line_nd(start, stop, endpoint=True), axis=1))[1:]
    inside = region[tuple(pts.T)]
    k = len(pts) if inside.all() else int(np.argmin(inside))
    return pts[:k]


def line_path(
    region: np.ndarray, config: ScribbleShapeConfig, rng: np.random.Generator
) -> np.ndarray:
    """A random-walk polyline ``(N, ndim)`` inside ``region`` (non-empty bool mask).

    It starts at a uniformly random region pixel and takes ``line_segments`` straight
    segments in random directions, each ``line_length`` x the region's largest bounding-box
    side long and cut where it would leave the region (a segment leaving at once is redrawn
    up to 8 times, then the walk stops).
    """
    idx = np.argwhere(region)
    extent = float((idx.max(axis=0) - idx.min(axis=0) + 1).max())
    current = idx[rng.integers(len(idx))]
    parts = [current[None]]
    lo, hi = config.line_segments
    for _ in range(int(rng.integers(lo, hi + 1))):
        for _ in range(_TRIES):
            step = _segment(region, current, extent * rng.uniform(*config.line_length), rng)
            if len(step):
                break
        else:
            break
        parts.append(step)
        current = step[-1]
    return np.concatenate(parts).astype(np.int64)


def _contour_loop(inner: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A closed contour of the 2D mask ``inner`` as a loop ``(N, 2)`` of its own border
    pixels (one contour of ``skimage.measure.find_contours``, drawn by length)."""
    from skimage.measure import find_contours

    padded = np.pad(inner, 1).astype(np.float64)
    contours = find_contours(padded, 0.5)
    lengths = np.array([len(c) for c in contours], np.float64)
    c = contours[int(rng.choice(len(contours), p=lengths / lengths.sum()))]
    # Each vertex sits halfway along a grid edge joining an inside and an outside pixel:
    # keep the inside one. Consecutive vertices share a 2x2 cell, so pixels stay neighbours.
    lo, hi = np.floor(c).astype(np.int64), np.ceil(c).astype(np.int64)
    pix = np.where((padded[tuple(hi.T)] > 0.5)[:, None], hi, lo) - 1
    pix = _dedup(pix)
    if len(pix) > 1 and np.array_equal(pix[0], pix[-1]):
        pix = pix[:-1]
    return pix


def contour_path(
    region: np.ndarray, config: ScribbleShapeConfig, rng: np.random.Generator
) -> np.ndarray:
    """A contour fragment ``(N, ndim)``: a contiguous arc of the border of the region pixels
    more than ``k`` px (``k`` uniform in ``contour_inset``) from the region's border.

    Every pixel of it is more than ``k`` and at most ``k + 1`` px from the region's border
    (``k`` is lowered while that set is empty). In 3D the contour is taken on a random
    ``z`` slice of that set.
    """
    dist = region_distance(region)
    k = int(rng.integers(config.contour_inset[0], config.contour_inset[1] + 1))
    while k > 0 and not (dist > k).any():
        k -= 1
    inner = dist > k
    z = None
    if region.ndim == 3:
        zs = np.flatnonzero(inner.any(axis=(1, 2)))
        z = int(zs[rng.integers(len(zs))])
        inner = inner[z]
    loop = _contour_loop(inner, rng)
    n = len(loop)
    keep = max(1, round(n * rng.uniform(*config.contour_fraction)))
    arc = loop[(int(rng.integers(n)) + np.arange(keep)) % n]
    if z is not None:
        arc = np.column_stack([np.full(len(arc), z), arc])
    return arc.astype(np.int64)


def warp_path(
    path: np.ndarray, region: np.ndarray, config: ScribbleShapeConfig, rng: np.random.Generator
) -> np.ndarray:
    """``path`` ``(N, ndim)`` moved by a smooth random elastic displacement, clipped to ``region``.

    The displacement field (one component per axis) is Gaussian-smoothed white noise
    (``scipy.ndimage.gaussian_filter``, sigma ``warp_sigma``) over the path's bounding box
    (enlarged by ``max(3 sigma, amplitude + 1)``), scaled so its largest component is
    ``warp_amplitude`` px, and sampled at the path's points (``map_coordinates``, linear).
    Moved points outside ``region`` are clipped back to their nearest region pixel, the
    points are joined again by straight lines and the longest run of the result inside
    ``region`` is kept, so a positive scribble never leaves the object (a negative one never
    enters it).
    """
    from scipy import ndimage

    pad = int(np.ceil(max(3 * config.warp_sigma, config.warp_amplitude + 1)))
    lo = np.maximum(path.min(axis=0) - pad, 0)
    hi = np.minimum(path.max(axis=0) + pad + 1, region.shape)
    sub = region[tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))]
    noise = [rng.standard_normal(sub.shape) for _ in range(region.ndim)]
    fields = [ndimage.gaussian_filter(n, config.warp_sigma) for n in noise]
    peak = max(float(np.abs(f).max()) for f in fields)
    scale = config.warp_amplitude / peak if peak > 0 else 0.0
    local = path - lo
    coords = local.T.astype(np.float64)
    disp = np.stack([ndimage.map_coordinates(f, coords, order=1) for f in fields], axis=1)
    moved = np.clip(np.rint(local + scale * disp), 0, np.array(sub.shape) - 1).astype(np.int64)
    nearest = ndimage.distance_transform_edt(~sub, return_distances=False, return_indices=True)
    moved = nearest[(slice(None), *moved.T)].T  # region pixels map to themselves
    dense = connect_points(moved)
    start, stop = _longest_run(sub[tuple(dense.T)])
    return dense[start:stop] + lo
