"""Per-case, per-class evaluation of a predicted label map against a reference label map."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.io.image import LabelMap
from medseg.metrics.overlap import (
    as_mask,
    check_same_shape,
    check_spacing,
    dice_from_counts,
    iou_from_counts,
)
from medseg.metrics.surface import surface_metrics

__all__ = ["METRICS", "EMPTY_MASK_RULES", "evaluate_case", "distance_cap_mm", "label_array"]

log = logging.getLogger(__name__)

#: Metric columns of every row, in output order.
METRICS = ("dice", "iou", "hd95", "assd", "nsd")

#: The empty-mask rules, written into JSON summaries so a result file says how it was scored.
EMPTY_MASK_RULES: dict[str, str] = {
    "both_empty": "dice = iou = nsd = 1, hd95 = assd = 0 (a correct 'absent' answer)",
    "one_empty": "dice = iou = nsd = 0, hd95 = assd = inf per case",
    "summary_cap": (
        "in summaries an infinite hd95/assd is replaced by the case's grid diagonal in mm "
        "(the largest distance between two voxel centres); n_capped counts them"
    ),
    "default_labels": "union of the non-zero labels of prediction and reference, per case",
}


def label_array(obj: LabelMap | np.ndarray, name: str) -> np.ndarray:
    """The integer array of a ``LabelMap`` or array, checked (bool -> uint8).

    Raises:
        InputError: NaN/inf, fractional or negative values, or a non-numeric dtype.
    """
    arr = np.asarray(obj.array if isinstance(obj, LabelMap) else obj)
    if arr.dtype == bool:
        return arr.view(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        as_mask(arr, name)  # raises on NaN/inf or fractional values
        arr = arr.astype(np.int64)
    elif not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise InputError(f"{name} contains negative labels (min {arr.min()})")
    return arr


def distance_cap_mm(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Grid diagonal in mm: the largest distance between two voxel centres of the grid.

    Used by summaries as the finite stand-in for an infinite HD95/ASSD (one mask empty).
    """
    return float(math.sqrt(sum(((n - 1) * s) ** 2 for n, s in zip(shape, spacing, strict=True))))


def _resolve_spacing(
    pred: LabelMap | np.ndarray, gt: LabelMap | np.ndarray, spacing: Sequence[float] | None
) -> Sequence[float] | None:
    if spacing is not None:
        return spacing
    if isinstance(gt, LabelMap):
        return gt.spacing
    if isinstance(pred, LabelMap):
        return pred.spacing
    return None


def _label_names(pred: LabelMap | np.ndarray, gt: LabelMap | np.ndarray) -> dict[int, str]:
    names: dict[int, str] = {}
    for obj in (pred, gt):  # reference names win
        if isinstance(obj, LabelMap):
            names.update(obj.label_names)
    return names


def _boxes(arr: np.ndarray, labels: Sequence[int]) -> dict[int, tuple[slice, ...] | None]:
    """Bounding box of each label in one pass (``scipy.ndimage.find_objects``)."""
    from scipy import ndimage

    top = max(labels, default=0)
    present = int(arr.max()) if arr.size else 0
    found = ndimage.find_objects(arr, max_label=min(top, present)) if present > 0 else []
    return {lab: (found[lab - 1] if lab - 1 < len(found) else None) for lab in labels}


def _union_box(a: tuple[slice, ...] | None, b: tuple[slice, ...] | None) -> tuple[slice, ...]:
    if a is None or b is None:
        box = a if b is None else b
        return box if box is not None else ()
    return tuple(
        slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b, strict=True)
    )


def _score_label(
    p_crop: np.ndarray, g_crop: np.ndarray, lab: int, spacing: tuple[float, ...], tol: float
) -> dict[str, Any]:
    p = p_crop == lab
    g = g_crop == lab
    n_p, n_g = int(np.count_nonzero(p)), int(np.count_nonzero(g))
    inter = int(np.count_nonzero(p & g))
    surf = surface_metrics(p, g, spacing, tol)
    return {
        "dice": dice_from_counts(inter, n_p, n_g),
        "iou": iou_from_counts(inter, n_p, n_g),
        **surf,
        "pred_voxels": n_p,
        "gt_voxels": n_g,
        "pred_empty": n_p == 0,
        "gt_empty": n_g == 0,
    }


def evaluate_case(
    pred: LabelMap | np.ndarray,
    gt: LabelMap | np.ndarray,
    labels: Sequence[int] | None = None,
    spacing: Sequence[float] | None = None,
    nsd_tolerance: float = 2.0,
    case: str = "",
) -> list[dict[str, Any]]:
    """Score every label of one case.

    Args:
        pred: predicted label map, 2D ``(H, W)`` or 3D ``(Z, Y, X)`` (``LabelMap`` or integer /
            bool array; 0 = background).
        gt: reference label map of the same shape.
        labels: label values to score; default the union of non-zero values in both maps.
            A listed label absent from both maps is scored by the both-empty rule.
        spacing: voxel size in mm in array axis order; default ``gt.spacing`` (or
            ``pred.spacing``) for ``LabelMap`` inputs, else 1 per axis.
        nsd_tolerance: NSD tolerance in mm.
        case: case name copied into each row.

    Returns:
        One dict per label, in label order, with ``case, label, name, dice, iou, hd95, assd,
        nsd, pred_voxels, gt_voxels, pred_empty, gt_empty, cap_mm`` (``cap_mm`` = grid
        diagonal used by summaries to cap an infinite HD95/ASSD).
    """
    p_arr = label_array(pred, "prediction")
    g_arr = label_array(gt, "ground truth")
    check_same_shape(p_arr, g_arr)
    if g_arr.ndim not in (2, 3):
        raise InputError(f"label maps must be 2D (H, W) or 3D (Z, Y, X), got {g_arr.shape}")
    sp = check_spacing(_resolve_spacing(pred, gt, spacing), g_arr.ndim)
    if labels is None:
        labels = sorted((set(np.unique(p_arr).tolist()) | set(np.unique(g_arr).tolist())) - {0})
    labels = [int(v) for v in labels]
    if any(v <= 0 for v in labels):
        raise InputError(f"labels to score must be positive integers, got {labels}")
    names = _label_names(pred, gt)
    cap = distance_cap_mm(g_arr.shape, sp)
    p_boxes, g_boxes = _boxes(p_arr, labels), _boxes(g_arr, labels)
    rows = []
    for lab in labels:
        # Work on the joint bounding box of this label only (see surface.crop_to_union): a
        # 117-class CT then takes seconds, not minutes.
        box = _union_box(p_boxes[lab], g_boxes[lab])
        if box:
            row = _score_label(p_arr[box], g_arr[box], lab, sp, nsd_tolerance)
        else:
            empty = np.zeros((1,) * g_arr.ndim, bool)
            row = _score_label(empty, empty, 1, sp, nsd_tolerance)
        rows.append({"case": case, "label": lab, "name": names.get(lab, ""), **row, "cap_mm": cap})
    log.debug("case %s: scored %d labels", case or "?", len(rows))
    return rows
