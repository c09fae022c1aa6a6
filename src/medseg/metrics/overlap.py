"""Overlap metrics (Dice, IoU) and the input checks shared by all metrics.

Masks are boolean or integer arrays of the same shape: 2D ``(H, W)`` or 3D ``(Z, Y, X)``
(any shape works for Dice/IoU). Non-zero means foreground. Float arrays are accepted only when
every value is a finite integer (``0.0``/``1.0``); NaN/inf or fractional values raise
:class:`~medseg.errors.InputError`.

Empty-mask rules (see ``docs/metrics.md``): both masks empty -> Dice = IoU = 1 (nothing to
find and nothing predicted is a perfect answer, as in the CVPR24 MedSAM-on-laptop challenge);
exactly one empty -> 0.

Dice and IoU are plain numpy (no torch import): the benchmark harness calls ``dice`` after every
simulated click, so they must stay cheap. Boolean inputs take a copy-free fast path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medseg.errors import InputError

__all__ = [
    "as_mask",
    "check_same_shape",
    "check_spacing",
    "dice",
    "dice_from_counts",
    "iou",
    "iou_from_counts",
    "overlap_counts",
]


def as_mask(array: np.ndarray, name: str = "mask") -> np.ndarray:
    """Boolean view of a mask: ``array != 0`` after checking the values.

    Args:
        array: bool, integer, or integer-valued float array of any shape.
        name: how to call the array in error messages (``"pred"``, ``"gt"``).

    Returns:
        Boolean array of the same shape (the input itself when it is already boolean).

    Raises:
        InputError: NaN/inf or non-integer values, or a dtype that is not bool/int/float.
    """
    arr = np.asarray(array)
    if arr.dtype == bool:
        return arr
    if np.issubdtype(arr.dtype, np.integer):
        return arr != 0
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{name} contains NaN or inf values")
        if not np.all(arr == np.round(arr)):
            raise InputError(f"{name} contains non-integer values; expected a mask or label map")
        return arr != 0
    raise InputError(f"{name} must be a bool or integer array, got dtype {arr.dtype}")


def check_same_shape(pred: np.ndarray, gt: np.ndarray) -> None:
    """Raise :class:`InputError` naming both shapes when ``pred`` and ``gt`` differ."""
    if pred.shape != gt.shape:
        raise InputError(
            f"prediction shape {tuple(pred.shape)} does not match ground-truth shape "
            f"{tuple(gt.shape)}"
        )


def check_spacing(spacing: Sequence[float] | np.ndarray | None, ndim: int) -> tuple[float, ...]:
    """Validated spacing in array axis order (``(sy, sx)`` or ``(sz, sy, sx)``, mm).

    ``None`` means 1.0 per axis (distances then count voxels).

    Raises:
        InputError: wrong number of values, or a value that is not finite and positive.
    """
    if spacing is None:
        return (1.0,) * ndim
    try:
        values = tuple(float(s) for s in np.asarray(spacing, dtype=float).ravel())
    except (TypeError, ValueError) as exc:
        raise InputError(f"spacing must be numbers, got {spacing!r}") from exc
    if len(values) != ndim:
        raise InputError(
            f"spacing has {len(values)} values {values} but the masks have {ndim} axes"
        )
    if not all(np.isfinite(v) and v > 0 for v in values):
        raise InputError(f"spacing values must be finite and positive, got {values}")
    return values


def overlap_counts(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int, int]:
    """``(|pred ∩ gt|, |pred|, |gt|)`` as voxel counts, after validating both masks."""
    p = as_mask(pred, "pred")
    g = as_mask(gt, "gt")
    check_same_shape(p, g)
    return (
        int(np.count_nonzero(p & g)),
        int(np.count_nonzero(p)),
        int(np.count_nonzero(g)),
    )


def dice_from_counts(inter: int, n_pred: int, n_gt: int) -> float:
    """Dice from voxel counts (the empty rule in one place): 1.0 when both are empty."""
    return 1.0 if n_pred + n_gt == 0 else 2.0 * inter / (n_pred + n_gt)


def iou_from_counts(inter: int, n_pred: int, n_gt: int) -> float:
    """IoU from voxel counts (the empty rule in one place): 1.0 when both are empty."""
    union = n_pred + n_gt - inter
    return 1.0 if union == 0 else inter / union


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice coefficient ``2|P∩G| / (|P| + |G|)``.

    Args:
        pred: predicted mask, ``(H, W)`` or ``(Z, Y, X)`` (any shape equal to ``gt``'s).
        gt: reference mask, same shape.

    Returns:
        Value in ``[0, 1]``; 1.0 when both masks are empty, 0.0 when exactly one is.
    """
    return dice_from_counts(*overlap_counts(pred, gt))


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union (Jaccard) ``|P∩G| / |P∪G|``.

    Args:
        pred: predicted mask, ``(H, W)`` or ``(Z, Y, X)``.
        gt: reference mask, same shape.

    Returns:
        Value in ``[0, 1]``; 1.0 when both masks are empty, 0.0 when exactly one is.
    """
    return iou_from_counts(*overlap_counts(pred, gt))
