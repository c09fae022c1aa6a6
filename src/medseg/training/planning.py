"""Experiment planning: from a dataset fingerprint to a plan (:class:`medseg.automatic.plan.Plan`).

The rules follow nnU-Net v2 (Isensee et al., Nat. Methods 2021) with one change for CPUs:
instead of a GPU memory budget, the patch size, batch size and network width are chosen so
that a measured compute rate allows ``min_iterations`` training iterations within the time
budget (and activations fit the memory budget).

Axis conventions (the transposed order of every spatial field) are those of
:mod:`medseg.automatic.plan`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medseg.automatic.plan import Normalization, Plan, PlanBudget
from medseg.automatic.topology import FILTER_LADDER, choose_network
from medseg.errors import InputError
from medseg.training.fingerprint import Fingerprint

__all__ = ["plan_experiment", "target_spacing", "ANISOTROPY_THRESHOLD"]

ANISOTROPY_THRESHOLD = 3.0  # nnU-Net: an axis is "anisotropic" if 3x coarser than the others
_MAX_BATCH = {2: 32, 3: 8}


def target_spacing(spacings: np.ndarray, shapes: np.ndarray) -> tuple[float, ...]:
    """Median spacing; for anisotropic data the coarse axis gets its 10th percentile.

    nnU-Net's rule: if the coarsest median spacing is more than ``ANISOTROPY_THRESHOLD``
    times the finest and the coarse axis has fewer voxels than (the smallest other axis /
    ``ANISOTROPY_THRESHOLD``), resampling to the median would create huge volumes, so the
    coarse axis uses the 10th percentile of its spacings, but never finer than the other axes.

    Args:
        spacings: ``(num_cases, dims)`` in array axis order.
        shapes: ``(num_cases, dims)`` matching shapes.
    """
    spacings, shapes = np.asarray(spacings, float), np.asarray(shapes, float)
    target = np.median(spacings, axis=0)
    if spacings.shape[1] < 2:
        return tuple(float(t) for t in target)
    target_size = np.median(shapes * spacings / target, axis=0)
    worst = int(np.argmax(target))
    others = [i for i in range(len(target)) if i != worst]
    aniso_spacing = target[worst] > ANISOTROPY_THRESHOLD * max(target[others])
    aniso_voxels = target_size[worst] * ANISOTROPY_THRESHOLD < min(target_size[others])
    if aniso_spacing and aniso_voxels:
        coarse = float(np.percentile(spacings[:, worst], 10))
        target[worst] = max(coarse, max(target[others]) + 1e-5)
    return tuple(float(t) for t in target)


def _normalization(fp: Fingerprint) -> tuple[tuple[Normalization, ...], bool]:
    norms = []
    for name, st in zip(fp.channel_names, fp.channel_stats, strict=True):
        key = name.strip().lower()
        if key == "ct":
            norms.append(
                Normalization(
                    "ct", st.mean, max(st.std, 1e-8), st.percentile_00_5, st.percentile_99_5
                )
            )
        elif key == "rgb_to_0_1":
            norms.append(Normalization("rgb_to_0_1"))
        elif key in ("nonorm", "none"):
            norms.append(Normalization("none"))
        else:
            norms.append(Normalization("zscore"))
    # nnU-Net: z-score inside the non-zero region when cropping removes >= 25% of voxels.
    nonzero = fp.crop_reduction < 0.75 and all(n.scheme == "zscore" for n in norms)
    return tuple(norms), nonzero


def _configuration(fp: Fingerprint, budget: PlanBudget, aniso: bool) -> tuple[str, str]:
    if fp.dims == 2:
        if budget.configuration == "3d":
            raise InputError("a 3d configuration was requested for a 2D dataset")
        return "2d", "2D images"
    if budget.configuration != "auto":
        return budget.configuration, "requested"
    if aniso:
        return "2d", f"spacing anisotropy > {ANISOTROPY_THRESHOLD:g}: slices trained in 2D"
    return "3d", "near-isotropic 3D volumes"


def _geometry(fp: Fingerprint) -> dict[str, Any]:
    """Target spacing, transpose (coarsest axis first) and resampled shapes."""
    spacings, shapes = fp.spacings, fp.shapes_after_crop
    target = np.array(target_spacing(spacings, shapes))
    transpose = tuple(range(fp.dims))
    if fp.dims == 3:
        worst = int(np.argmax(target))
        transpose = (worst, *[i for i in range(3) if i != worst])
    resampled = shapes * spacings / target
    t_spacing = target[list(transpose)]
    return {
        "transpose": transpose,
        "spacing": t_spacing,
        "resampled": resampled,
        "median": np.median(resampled, axis=0)[list(transpose)],
        "aniso": bool(t_spacing.max() / t_spacing.min() > ANISOTROPY_THRESHOLD),
    }


def _batch_size(net: dict[str, Any], ctx: dict[str, Any], resampled: np.ndarray) -> int:
    total_voxels = float(np.sum(np.prod(resampled, axis=1)))
    return max(
        2,
        min(
            int(ctx["allowed_flops"] // net["flops"]),
            int(ctx["memory"] // net["mem"]),
            int(0.05 * total_voxels // float(np.prod(net["patch"]))),  # nnU-Net: <= 5% of data
            _MAX_BATCH[len(net["patch"])],
        ),
    )


def _notes(config: str, why: str, geo: dict, net: dict, iter_s: float, budget: PlanBudget) -> list:
    notes = [
        f"configuration {config}: {why}",
        f"target spacing {tuple(round(float(s), 4) for s in geo['spacing'])} (transposed order)",
        f"network width {net['base']} (widths tried: {FILTER_LADDER}), {len(net['strides'])} "
        "stages",
        f"estimated {iter_s:.3f} s per iteration -> {int(budget.time_budget_s / iter_s)} "
        f"iterations in {budget.time_budget_s:.0f} s",
    ]
    if not net["fits"]:
        notes.append(
            f"WARNING: even the smallest network allows fewer than {budget.min_iterations} "
            "iterations in the time budget; expect an under-trained model"
        )
    return notes


def _network(config: str, dims: int, geo: dict[str, Any], ctx: dict[str, Any]) -> dict:
    slices = dims == 3 and config == "2d"
    spacing, median = geo["spacing"], geo["median"]
    return choose_network(
        spacing[1:] if slices else spacing, np.maximum(median[1:] if slices else median, 1), ctx
    )


def plan_experiment(fp: Fingerprint, budget: PlanBudget) -> Plan:
    """Decide configuration, spacing, patch, batch, topology and normalisation.

    Raises:
        InputError: an impossible request (3d configuration for 2D data, no cases).
    """
    if not fp.cases:
        raise InputError("the fingerprint has no cases")
    geo = _geometry(fp)
    config, why = _configuration(fp, budget, geo["aniso"])
    ctx = {
        "allowed_flops": budget.flops_per_second * budget.time_budget_s / budget.min_iterations,
        "memory": budget.memory_bytes,
        "channels": (fp.num_channels, len(fp.label_values)),
    }
    net = _network(config, fp.dims, geo, ctx)
    if budget.configuration == "auto" and config == "3d" and not net["context"]:
        # The budget only allows a 3D patch below the 64-voxel context floor: 2D slices see
        # far more in-plane context in the same time (nnU-Net would pick by validation; the
        # 3-minute BraTS runs in docs/benchmarks.md support this rule).
        net2d = _network("2d", fp.dims, geo, ctx)
        if net2d["context"] or net2d["fits"]:
            why = f"the time budget allows only a {net['patch']} 3D patch; 2D slices see more"
            config, net = "2d", net2d
    slices = fp.dims == 3 and config == "2d"  # 2D network on slices of 3D data
    t_spacing, median = geo["spacing"], geo["median"]
    batch = _batch_size(net, ctx, geo["resampled"])
    iter_s = batch * net["flops"] / budget.flops_per_second
    norms, nonzero = _normalization(fp)
    spacing_field = (None, *t_spacing[1:]) if slices else tuple(t_spacing)
    return Plan(
        configuration=config,
        data_dims=fp.dims,
        transpose=geo["transpose"],
        target_spacing=tuple(None if s is None else float(s) for s in spacing_field),
        patch_size=tuple(int(p) for p in net["patch"]),
        batch_size=int(batch),
        kernel_sizes=tuple(tuple(int(v) for v in k) for k in net["kernels"]),
        strides=tuple(tuple(int(v) for v in s) for s in net["strides"]),
        filters=tuple(int(f) for f in net["filters"]),
        deep_supervision_heads=max(0, min(3, len(net["strides"]) - 2)),
        channel_names=fp.channel_names,
        normalization=norms,
        use_nonzero_mask=nonzero,
        label_values=fp.label_values,
        label_names=dict(fp.label_names),
        median_shape=tuple(round(float(m)) for m in median),
        anisotropic=geo["aniso"],
        estimated_iteration_s=float(iter_s),
        estimated_iterations=int(budget.time_budget_s / iter_s),
        estimated_memory_mb=float(batch * net["mem"] / 2**20),
        budget=budget,
        notes=tuple(_notes(config, why, geo, net, iter_s, budget)),
    )
