"""Scribbles from a ground-truth mask (see :mod:`medseg.prompts.simulation`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medseg.errors import PromptError
from medseg.prompts.simulation.clicks import ClickConfig, as_mask, error_regions, region_distance
from medseg.prompts.simulation.scribble_shapes import (
    ScribbleShapeConfig,
    contour_path,
    line_path,
    warp_path,
)

__all__ = [
    "SCRIBBLE_MODES",
    "Scribble",
    "ScribbleConfig",
    "ScribbleShapeConfig",
    "simulate_scribble",
    "next_scribble",
]

#: Scribble kinds of :func:`simulate_scribble` (``"random"`` picks one of the first three).
SCRIBBLE_MODES = ("centerline", "line", "contour", "random")


@dataclass(frozen=True, eq=False)
class Scribble:
    """A scribble: an ordered path of neighbouring pixels and its label.

    Attributes:
        points: ``(N, D)`` int array of ``(x, y[, z])`` pixel indices, consecutive points are
            8- (2D) or 26- (3D) neighbours.
        label: 1 = foreground scribble, 0 = background scribble.
    """

    points: np.ndarray
    label: int

    def mask(self, shape: Sequence[int]) -> np.ndarray:
        """Boolean mask of the scribble's pixels on an array of spatial ``shape``."""
        out = np.zeros(tuple(shape), dtype=bool)
        out[tuple(self.points[:, ::-1].T)] = True
        return out

    def to_dict(self) -> dict[str, object]:
        return {"points": self.points.tolist(), "label": self.label}


@dataclass(frozen=True)
class ScribbleConfig:
    """How scribbles are drawn.

    Attributes:
        erosion: keep pixels whose distance to the region border is at least this fraction
            of the largest distance (at least 1 pixel) before skeletonising, in ``[0, 1]``.
        min_length: shortest scribble, as a fraction of the skeleton path, in ``(0, 1]``.
    """

    erosion: float = 0.3
    min_length: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.erosion <= 1.0:
            raise PromptError(f"scribble erosion must be in [0, 1], got {self.erosion}")
        if not 0.0 < self.min_length <= 1.0:
            raise PromptError(f"scribble min_length must be in (0, 1], got {self.min_length}")


def _skeleton_path(skeleton: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Longest shortest path ``(N, ndim)`` (array indices) through the skeleton's pixels,
    found by two Dijkstra sweeps from a random start (the skeleton's approximate diameter)."""
    from itertools import product

    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    idx = np.argwhere(skeleton)
    n = len(idx)
    if n == 1:
        return idx
    # Pixel graph of the skeleton, written out because scipy/skimage have no "graph of a
    # binary mask" helper for nD masks: edges join 8/26-neighbours, weighted by distance.
    lookup = -np.ones(skeleton.shape, dtype=np.int64)
    lookup[tuple(idx.T)] = np.arange(n)
    rows, cols, weights = [], [], []
    for off in product((-1, 0, 1), repeat=skeleton.ndim):
        if not any(off):
            continue
        nb = idx + np.array(off)
        ok = np.all((nb >= 0) & (nb < np.array(skeleton.shape)), axis=1)
        j = np.full(n, -1)
        j[ok] = lookup[tuple(nb[ok].T)]
        keep = j >= 0
        rows.append(np.flatnonzero(keep))
        cols.append(j[keep])
        weights.append(np.full(int(keep.sum()), float(np.linalg.norm(off))))
    graph = coo_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    ).tocsr()
    start = int(rng.integers(n))
    d0 = dijkstra(graph, indices=start)
    a = int(np.argmax(np.where(np.isfinite(d0), d0, -1)))
    da, pred = dijkstra(graph, indices=a, return_predecessors=True)
    b = int(np.argmax(np.where(np.isfinite(da), da, -1)))
    path = [b]
    while path[-1] != a:
        path.append(int(pred[path[-1]]))
    return idx[np.array(path[::-1])]


def _centerline_path(r: np.ndarray, config: ScribbleConfig, rng: np.random.Generator) -> np.ndarray:
    """A random contiguous part ``(N, ndim)`` (array indices) of the longest skeleton path of
    the eroded region ``r`` (non-empty bool mask), as described by :class:`ScribbleConfig`."""
    from scipy import ndimage
    from skimage.morphology import skeletonize

    dist = region_distance(r)
    core = dist >= max(1.0, config.erosion * float(dist.max()))
    skeleton = skeletonize(core)
    if not skeleton.any():  # tiny cores can thin to nothing: fall back to the innermost pixel
        skeleton = dist == dist.max()
    labels, n = ndimage.label(skeleton, structure=np.ones((3,) * r.ndim, bool))
    if n > 1:
        skeleton = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    path = _skeleton_path(skeleton, rng)
    keep = max(1, round(len(path) * rng.uniform(config.min_length, 1.0)))
    start = int(rng.integers(len(path) - keep + 1))
    return path[start : start + keep]


def _check_mode(mode: str, warp: float) -> None:
    if mode not in SCRIBBLE_MODES:
        raise PromptError(f"scribble mode must be one of {SCRIBBLE_MODES}, got {mode!r}")
    if not 0.0 <= float(warp) <= 1.0:
        raise PromptError(f"scribble warp probability must be in [0, 1], got {warp}")


def simulate_scribble(
    region: np.ndarray,
    label: int,
    *,
    config: ScribbleConfig = ScribbleConfig(),
    rng: np.random.Generator,
    mode: str = "centerline",
    warp: float = 0.0,
    shapes: ScribbleShapeConfig = ScribbleShapeConfig(),  # noqa: B008 - frozen dataclass
) -> Scribble:
    """A scribble inside ``region`` (2D ``(H, W)`` or 3D ``(Z, Y, X)`` bool mask) with
    ``label`` (1 or 0), ScribblePrompt style: "lines, centre lines, contour fragments,
    randomly warped".

    ``mode``:

    - ``"centerline"`` (default): part of the skeleton of the eroded region (``config``);
    - ``"line"``: a random-walk polyline of a few straight segments, cut at the region's
      border (``shapes.line_segments``, ``shapes.line_length``);
    - ``"contour"``: an arc of the region's contour moved a few pixels inward
      (``shapes.contour_inset``, ``shapes.contour_fraction``; 3D: on one ``z`` slice);
    - ``"random"``: one of the three per call (``shapes.mode_weights``).

    ``warp`` (probability in ``[0, 1]``, ``True`` = always) applies a smooth random elastic
    displacement (``shapes.warp_sigma``, ``shapes.warp_amplitude``) and clips the result
    back into the region (see :func:`~medseg.prompts.simulation.scribble_shapes.warp_path`).
    Every mode returns a path of neighbouring pixels inside ``region``. The defaults
    (``"centerline"``, no warp) draw exactly the scribbles of earlier medseg versions and
    are what ``medseg bench`` uses, so published benchmark numbers stay reproducible;
    interactive-model training uses ``mode="random"`` with warping.

    Raises ``PromptError`` for an empty region, a bad label, mode or warp probability.
    """
    if label not in (0, 1):
        raise PromptError(f"scribble label must be 1 or 0, got {label}")
    _check_mode(mode, warp)
    r = as_mask(region, "region")
    if not r.any():
        raise PromptError("cannot draw a scribble in an empty region")
    if mode == "random":
        w = np.asarray(shapes.mode_weights, np.float64)
        mode = SCRIBBLE_MODES[int(rng.choice(3, p=w / w.sum()))]
    if mode == "line":
        path = line_path(r, shapes, rng)
    elif mode == "contour":
        path = contour_path(r, shapes, rng)
    else:
        path = _centerline_path(r, config, rng)
    if warp > 0 and rng.random() < warp:  # no draw without warping: defaults stay bit-exact
        path = warp_path(path, r, shapes, rng)
    return Scribble(points=path[:, ::-1].astype(np.int64), label=label)


def next_scribble(
    pred: np.ndarray | None,
    gt: np.ndarray,
    *,
    config: ScribbleConfig = ScribbleConfig(),
    click_config: ClickConfig = ClickConfig(),  # noqa: B008 - frozen dataclass
    rng: np.random.Generator,
    mode: str = "centerline",
    warp: float = 0.0,
    shapes: ScribbleShapeConfig = ScribbleShapeConfig(),  # noqa: B008 - frozen dataclass
) -> Scribble | None:
    """The next scribble: in the target when ``pred`` is None, else in the largest error
    region (positive in a miss, negative in a false positive). None when ``pred`` is perfect.

    ``mode``, ``warp`` and ``shapes`` are passed on to :func:`simulate_scribble` (defaults:
    the benchmark's centre-line scribbles)."""
    g = as_mask(gt, "ground truth")
    if pred is None:
        if not g.any():
            raise PromptError("ground truth mask is empty: there is nothing to scribble on")
        mask, label = g, 1
    else:
        regions = error_regions(pred, g, click_config.error_regions)
        if not regions:
            return None
        region = regions[0]
        mask, label = region.mask, 1 if region.false_negative else 0
        if click_config.error_regions == "combined":  # keep the part of the region's own kind
            mask &= g if region.false_negative else ~g
    return simulate_scribble(
        mask, label, config=config, rng=rng, mode=mode, warp=warp, shapes=shapes
    )
