"""Prompt types and their validation.

Coordinates are pixel/voxel indices: ``x`` = column, ``y`` = row, ``z`` = slice, the same
convention as :mod:`medseg.io.image`. A box is ``(x0, y0, x1, y1)`` with ``x0 < x1`` and
``y0 < y1``; boxes taken from a mask are ``(xmin, ymin, xmax, ymax)`` of its foreground
pixel indices (the SAM / MedSAM convention). Coordinates may range over ``0..W`` and
``0..H`` (so exclusive end coordinates are accepted too); points must lie on a pixel,
``0 <= x < W`` and ``0 <= y < H``.

Every check raises :class:`medseg.errors.PromptError` with a message that names the bad
prompt, so user interfaces can show it as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medseg.errors import PromptError

__all__ = [
    "PROMPT_KINDS",
    "PromptSet",
    "validate_box",
    "validate_box3d",
    "validate_points",
    "validate_slice_index",
    "box_from_mask",
]

# Every prompt kind a model may declare support for.
PROMPT_KINDS = frozenset({"box", "points", "mask", "scribbles"})


def _finite_vector(values: object, n: int, what: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError, OverflowError) as exc:
        raise PromptError(f"{what} must be {n} numbers, got {values!r}") from exc
    if arr.size != n:
        raise PromptError(f"{what} must be {n} numbers, got {arr.size}: {values!r}")
    if not np.all(np.isfinite(arr)):
        raise PromptError(f"{what} contains NaN or inf: {values!r}")
    return arr


def validate_box(box: Sequence[float], shape: tuple[int, int]) -> np.ndarray:
    """Check one box ``(x0, y0, x1, y1)`` against an image of spatial ``shape`` ``(H, W)``.

    Returns the box as a float64 array of shape ``(4,)``. Raises ``PromptError`` when the box
    is not 4 finite numbers, is empty or inverted (``x1 <= x0`` or ``y1 <= y0``) or extends
    outside ``0..W`` x ``0..H``.
    """
    b = _finite_vector(box, 4, "box")
    h, w = shape
    x0, y0, x1, y1 = b
    if x1 < x0 or y1 < y0:
        raise PromptError(f"box {tuple(b.tolist())} is inverted: need x0 < x1 and y0 < y1")
    if x1 == x0 or y1 == y0:
        raise PromptError(f"box {tuple(b.tolist())} is empty: need x0 < x1 and y0 < y1")
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        raise PromptError(
            f"box {tuple(b.tolist())} extends outside the image (width {w}, height {h}); "
            f"coordinates must lie in 0..{w} (x) and 0..{h} (y)"
        )
    return b


def validate_box3d(box3d: Sequence[float], shape: tuple[int, int, int]) -> np.ndarray:
    """Check a 3D box ``(x0, y0, z0, x1, y1, z1)`` against a volume ``shape`` ``(Z, Y, X)``.

    ``z0 <= z1`` are inclusive slice indices (``z0 == z1`` is a single slice); the in-plane
    part follows :func:`validate_box`. Returns a float64 array of shape ``(6,)``.
    """
    b = _finite_vector(box3d, 6, "box3d")
    nz, ny, nx = shape
    x0, y0, z0, x1, y1, z1 = b
    validate_box((x0, y0, x1, y1), (ny, nx))
    if z1 < z0:
        raise PromptError(f"box3d z range {z0:g}..{z1:g} is inverted: need z0 <= z1")
    if z0 < 0 or z1 > nz - 1:
        raise PromptError(f"box3d z range {z0:g}..{z1:g} is outside the volume (0..{nz - 1})")
    return b


def validate_points(
    points: Sequence[Sequence[float]],
    labels: Sequence[int] | None,
    shape: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Check points ``[(x, y), ...]`` and labels (1 = foreground, 0 = background).

    ``labels=None`` means every point is foreground. Returns ``(points (P, 2) float64,
    labels (P,) int64)``.
    """
    try:
        pts = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise PromptError(f"points must be a list of (x, y) pairs, got {points!r}") from exc
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] == 0:
        raise PromptError(f"points must be a non-empty list of (x, y) pairs, got {points!r}")
    if not np.all(np.isfinite(pts)):
        raise PromptError("points contain NaN or inf")
    lab = np.ones(len(pts), np.int64) if labels is None else np.asarray(labels).ravel()
    if lab.shape != (len(pts),):
        raise PromptError(f"got {len(pts)} points but {lab.size} point labels")
    if not np.all(np.isin(lab, (0, 1))):
        raise PromptError(f"point labels must be 1 (foreground) or 0 (background), got {lab}")
    h, w = shape
    bad = (pts[:, 0] < 0) | (pts[:, 0] >= w) | (pts[:, 1] < 0) | (pts[:, 1] >= h)
    if bad.any():
        p = tuple(pts[np.argmax(bad)].tolist())
        raise PromptError(f"point {p} is outside the image (width {w}, height {h})")
    return pts, lab.astype(np.int64)


def validate_slice_index(index: object, depth: int) -> int:
    """Check a slice index against a volume with ``depth`` slices; returns it as ``int``."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise PromptError(f"slice index must be an integer, got {index!r}")
    if not 0 <= int(index) < depth:
        raise PromptError(f"slice index {index} is outside the volume (0..{depth - 1})")
    return int(index)


def box_from_mask(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight box ``(xmin, ymin, xmax, ymax)`` of a 2D ``(H, W)`` mask; None when empty."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise PromptError(f"box_from_mask needs a 2D (H, W) mask, got shape {m.shape}")
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(m.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


@dataclass(frozen=True, eq=False)
class PromptSet:
    """Prompts for ``N`` objects on one 2D image ``(H, W)``, already validated.

    Attributes:
        boxes: ``(N, 4)`` float64 ``(x0, y0, x1, y1)`` or None.
        points: ``(N, P, 2)`` float64 ``(x, y)`` or None.
        point_labels: ``(N, P)`` int64, 1 = foreground, 0 = background (with ``points``).
        mask_input: ``(N, H, W)`` float32 logits at image resolution (``> 0`` = foreground)
            from an earlier prediction, or None.
        scribbles: ``(N, 2, H, W)`` bool scribble pixels (positive, negative) or None.
    """

    boxes: np.ndarray | None = None
    points: np.ndarray | None = None
    point_labels: np.ndarray | None = None
    mask_input: np.ndarray | None = None
    scribbles: np.ndarray | None = None

    def _arrays(self) -> tuple[np.ndarray | None, ...]:
        return (self.boxes, self.points, self.mask_input, self.scribbles)

    def __post_init__(self) -> None:
        counts = {len(a) for a in self._arrays() if a is not None}
        if not counts:
            raise PromptError("no prompt given: pass a box, boxes, points, scribbles or mask_input")
        if len(counts) > 1:
            raise PromptError(f"prompts disagree on the number of objects: {sorted(counts)}")
        if (self.points is None) != (self.point_labels is None):
            raise PromptError("points and point_labels must be given together")

    @property
    def num_objects(self) -> int:
        """Number of objects ``N``."""
        for a in self._arrays():
            if a is not None:
                return len(a)
        return 0  # pragma: no cover - __post_init__ rejects an empty set

    @property
    def kinds(self) -> frozenset[str]:
        """The prompt kinds present (subset of :data:`PROMPT_KINDS`)."""
        present = {
            "box": self.boxes is not None,
            "points": self.points is not None,
            "mask": self.mask_input is not None,
            "scribbles": self.scribbles is not None,
        }
        return frozenset(k for k, v in present.items() if v)
