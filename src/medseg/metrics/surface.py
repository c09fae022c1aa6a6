"""Surface-distance metrics (HD95, ASSD, NSD) in mm, computed with MONAI.

All functions take two masks of the same shape, 2D ``(H, W)`` or 3D ``(Z, Y, X)`` (bool,
integer, or integer-valued float; non-zero = foreground), and ``spacing`` in the same axis
order (``(sy, sx)`` / ``(sz, sy, sx)``, mm; ``None`` = 1 per axis, i.e. voxel units).

Definitions (MONAI 1.x, checked by hand in ``tests/metrics``):

- Surface voxels are the foreground voxels removed by a binary erosion with the
  face-connected structuring element (``scipy.ndimage.binary_erosion``); distances are exact
  Euclidean distances between surface-voxel centres, scaled by ``spacing``.
- HD95 = ``max(q95(d(P->G)), q95(d(G->P)))`` where ``q95`` is the 95th percentile with linear
  interpolation between order statistics (numpy's default ``"linear"`` method, the same as the
  ``torch.quantile`` in MONAI's ``compute_hausdorff_distance``), taken per direction, then the
  larger of the two.
- ASSD = mean of the union of both directed distance sets
  ``(sum d(P->G) + sum d(G->P)) / (|∂P| + |∂G|)``.
- NSD (normalised surface Dice, Nikolov et al. 2021) uses sub-voxel surfaces
  (``use_subvoxels=True``: DeepMind's surface elements with their areas / contour lengths,
  which MONAI supports in 2D and 3D): the surface area of each mask lying within
  ``tolerance_mm`` of the other surface, divided by the total area of both surfaces.

Masks are cropped to the bounding box of their union and zero-padded by one voxel first
(:func:`crop_to_union`); this is what makes 100+ classes per volume fast. The padding closes the
surface of an object that touches the image border (as DeepMind's surface-distance code does),
so for such objects NSD can differ slightly from MONAI's un-padded ``compute_surface_dice``.

Empty-mask rules: both empty -> HD95 = ASSD = 0, NSD = 1; exactly one empty -> HD95 = ASSD =
``inf`` and NSD = 0. Summaries cap the infinite distances (see :mod:`medseg.metrics.accumulate`).

torch/MONAI are imported inside the functions so that ``import medseg.metrics`` stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from medseg.errors import InputError
from medseg.metrics.overlap import as_mask, check_same_shape, check_spacing

__all__ = ["SURFACE_METRICS", "assd", "hd95", "nsd", "surface_metrics", "crop_to_union"]

SURFACE_METRICS = ("hd95", "assd", "nsd")

# Zero voxels added around the joint bounding box. One is enough for both the erosion edges and
# the 2x2(x2) sub-voxel surface kernel; the padding also closes surfaces of objects that touch the
# image border, as DeepMind's surface-distance code does.
CROP_MARGIN = 1


def _prepare(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | None
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    p = as_mask(pred, "pred")
    g = as_mask(gt, "gt")
    check_same_shape(p, g)
    if p.ndim not in (2, 3):
        raise InputError(
            f"surface metrics need 2D (H, W) or 3D (Z, Y, X) masks, got shape {tuple(p.shape)}"
        )
    return p, g, check_spacing(spacing, p.ndim)


def crop_to_union(
    pred: np.ndarray, gt: np.ndarray, margin: int = CROP_MARGIN
) -> tuple[np.ndarray, np.ndarray]:
    """Crop two boolean masks to the bounding box of their union, then zero-pad by ``margin``.

    Surface distances only depend on the foreground, so this changes no metric value but makes
    the distance computation scale with the object size instead of the image size (117 classes
    of a CT volume are evaluated in seconds). Everything outside the union box is background in
    both masks, so padding with zeros is the same as widening the crop into the image.

    Returns:
        ``(pred_crop, gt_crop)``, equal shapes; both ``(0,)*ndim``-padded empties if the union
        is empty.
    """
    union = pred | gt
    slices = []
    for axis in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != axis)
        idx = np.flatnonzero(np.any(union, axis=other))
        if idx.size == 0:
            return np.zeros((0,) * union.ndim, bool), np.zeros((0,) * union.ndim, bool)
        slices.append(slice(int(idx[0]), int(idx[-1]) + 1))
    box = tuple(slices)
    pad = [(margin, margin)] * union.ndim
    return np.pad(pred[box], pad), np.pad(gt[box], pad)


def _empty_values(n_pred: int, n_gt: int) -> dict[str, float] | None:
    """The documented values when at least one mask is empty, else None."""
    if n_pred == 0 and n_gt == 0:
        return {"hd95": 0.0, "assd": 0.0, "nsd": 1.0}
    if n_pred == 0 or n_gt == 0:
        return {"hd95": math.inf, "assd": math.inf, "nsd": 0.0}
    return None


def _voxel_distances(
    p: np.ndarray, g: np.ndarray, spacing: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Directed distances (mm) between the erosion surface voxels: ``(d(P->G), d(G->P))``."""
    from monai.metrics.utils import get_mask_edges, get_surface_distance

    edges_p, edges_g = get_mask_edges(p, g, crop=False)
    return (
        np.asarray(get_surface_distance(edges_p, edges_g, "euclidean", spacing), float),
        np.asarray(get_surface_distance(edges_g, edges_p, "euclidean", spacing), float),
    )


def _nsd_subvoxel(
    p: np.ndarray, g: np.ndarray, spacing: tuple[float, ...], tolerance_mm: float
) -> float:
    """NSD from MONAI's sub-voxel surface elements (same steps as ``compute_surface_dice``)."""
    import torch
    from monai.metrics.utils import get_mask_edges, get_surface_distance

    edges_p, edges_g, areas_p, areas_g = (
        t.numpy()
        for t in get_mask_edges(
            torch.from_numpy(p), torch.from_numpy(g), crop=False, spacing=spacing
        )
    )
    # numpy from here on: boolean indexing of large tensors is several times slower in torch.
    d_pg = np.asarray(get_surface_distance(edges_p, edges_g, "euclidean", spacing))
    d_gp = np.asarray(get_surface_distance(edges_g, edges_p, "euclidean", spacing))
    areas_p, areas_g = areas_p[edges_p], areas_g[edges_g]
    total = float(areas_p.sum() + areas_g.sum())
    correct = float(areas_p[d_pg <= tolerance_mm].sum() + areas_g[d_gp <= tolerance_mm].sum())
    return correct / total


def _monai_values(
    p: np.ndarray,
    g: np.ndarray,
    spacing: tuple[float, ...],
    tolerance_mm: float,
    which: Sequence[str],
) -> dict[str, float]:
    """Surface metrics of non-empty, already cropped masks; ``which`` selects them.

    Edges, sub-voxel surface areas and distances come from ``monai.metrics.utils`` (the
    functions behind ``compute_hausdorff_distance``, ``compute_average_surface_distance`` and
    ``compute_surface_dice``). We call them directly rather than the three ``compute_*``
    functions because those recompute the edges and both KD-tree queries each and re-crop with
    a MONAI transform: this is ~3x faster, and ``tests/metrics`` checks that the values equal
    the ``compute_*`` results.
    """
    out: dict[str, float] = {}
    if "hd95" in which or "assd" in which:
        d_pg, d_gp = _voxel_distances(p, g, spacing)
        if "hd95" in which:
            # Linear interpolation between order statistics, as torch.quantile in MONAI.
            out["hd95"] = float(max(np.quantile(d_pg, 0.95), np.quantile(d_gp, 0.95)))
        if "assd" in which:
            out["assd"] = float(np.concatenate([d_pg, d_gp]).mean())
    if "nsd" in which:
        out["nsd"] = _nsd_subvoxel(p, g, spacing, tolerance_mm)
    return {k: out[k] for k in which}


def _check_tolerance(tolerance_mm: float) -> float:
    tol = float(tolerance_mm)
    if not math.isfinite(tol) or tol < 0:
        raise InputError(f"NSD tolerance must be a finite number >= 0 mm, got {tolerance_mm}")
    return tol


def surface_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float] | None = None,
    tolerance_mm: float = 2.0,
    which: Sequence[str] = SURFACE_METRICS,
) -> dict[str, float]:
    """HD95, ASSD (mm) and NSD at ``tolerance_mm`` for one pair of masks.

    Args:
        pred: predicted mask, ``(H, W)`` or ``(Z, Y, X)``.
        gt: reference mask, same shape.
        spacing: voxel size in mm in array axis order; ``None`` = 1 per axis.
        tolerance_mm: NSD tolerance in mm (a boundary element within this distance of the
            other surface counts as correct).
        which: subset of ``("hd95", "assd", "nsd")`` to compute.

    Returns:
        ``{name: value}`` for the requested metrics, following the empty-mask rules in the
        module docstring (``inf`` distances when exactly one mask is empty).
    """
    unknown = [w for w in which if w not in SURFACE_METRICS]
    if unknown:
        raise InputError(f"unknown surface metric(s) {unknown}; choose from {SURFACE_METRICS}")
    tol = _check_tolerance(tolerance_mm)
    p, g, sp = _prepare(pred, gt, spacing)
    empty = _empty_values(int(np.count_nonzero(p)), int(np.count_nonzero(g)))
    if empty is not None:
        return {k: empty[k] for k in which}
    p, g = crop_to_union(p, g)
    return _monai_values(p, g, sp, tol, which)


def hd95(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """Symmetric 95th-percentile Hausdorff distance in mm (``inf`` if one mask is empty).

    ``pred``/``gt``: ``(H, W)`` or ``(Z, Y, X)``; ``spacing`` in the same axis order.
    """
    return surface_metrics(pred, gt, spacing, which=("hd95",))["hd95"]


def assd(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """Average symmetric surface distance in mm (``inf`` if one mask is empty).

    ``pred``/``gt``: ``(H, W)`` or ``(Z, Y, X)``; ``spacing`` in the same axis order.
    """
    return surface_metrics(pred, gt, spacing, which=("assd",))["assd"]


def nsd(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float] | None = None,
    tolerance_mm: float = 2.0,
) -> float:
    """Normalised surface Dice at ``tolerance_mm`` with sub-voxel surfaces, in ``[0, 1]``.

    ``pred``/``gt``: ``(H, W)`` or ``(Z, Y, X)``; ``spacing`` in the same axis order.
    Both empty -> 1, one empty -> 0.
    """
    return surface_metrics(pred, gt, spacing, tolerance_mm, which=("nsd",))["nsd"]
