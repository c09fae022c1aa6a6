"""Experiment planning: from a dataset fingerprint to a training plan (``plans.json``).

The rules follow nnU-Net v2 (Isensee et al., Nat. Methods 2021) with one change for CPUs:
instead of a GPU memory budget, the patch size, batch size and network width are chosen so
that a measured compute rate allows ``min_iterations`` training iterations within the time
budget (and activations fit the memory budget).

Axis conventions: ``Plan.transpose`` reorders the spatial axes of an array in medseg order
(2D ``(H, W)``, 3D ``(Z, Y, X)``) so that the lowest-resolution axis comes first; every
spatial field of the plan (``target_spacing``, ``patch_size``, kernels, strides,
``median_shape``) is given in that transposed order. In the ``2d`` configuration of a 3D
dataset the network sees slices along the first (transposed) axis; ``patch_size``,
``kernel_sizes`` and ``strides`` then have two entries and ``target_spacing[0]`` is None
(each case keeps its own slice spacing).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.io.atomic import atomic_path
from medseg.training.fingerprint import Fingerprint
from medseg.training.topology import FILTER_LADDER, choose_network

__all__ = [
    "PlanBudget",
    "Normalization",
    "Plan",
    "plan_experiment",
    "target_spacing",
    "save_plan",
    "load_plan",
    "with_overrides",
    "ANISOTROPY_THRESHOLD",
]

ANISOTROPY_THRESHOLD = 3.0  # nnU-Net: an axis is "anisotropic" if 3x coarser than the others
_MAX_BATCH = {2: 32, 3: 8}


@dataclass(frozen=True)
class PlanBudget:
    """Resources the plan must fit: training seconds, bytes for activations, compute rate.

    ``flops_per_second`` is the measured rate of this machine on a DynUNet step
    (:func:`medseg.training.network.measure_flops_per_second`).
    """

    time_budget_s: float = 1800.0
    memory_bytes: float = 4e9
    flops_per_second: float = 2e10
    min_iterations: int = 1000
    configuration: str = "auto"

    def __post_init__(self) -> None:
        if self.time_budget_s <= 0 or self.memory_bytes <= 0 or self.flops_per_second <= 0:
            raise InputError("time budget, memory budget and compute rate must be positive")
        if self.min_iterations < 1:
            raise InputError(f"min_iterations must be >= 1, got {self.min_iterations}")
        if self.configuration not in ("auto", "2d", "3d"):
            raise InputError(f"configuration must be auto, 2d or 3d, got {self.configuration!r}")


@dataclass(frozen=True)
class Normalization:
    """Per-channel intensity normalisation.

    ``scheme``: ``"ct"`` (clip to ``lower``..``upper`` then ``(x - mean) / std``, all from
    dataset foreground statistics), ``"zscore"`` (per image), ``"rgb_to_0_1"`` (x / 255) or
    ``"none"``.
    """

    scheme: str
    mean: float = 0.0
    std: float = 1.0
    lower: float = 0.0
    upper: float = 0.0


@dataclass(frozen=True)
class Plan:
    """A complete, JSON-serialisable training plan (see module docstring for axis order)."""

    configuration: str
    data_dims: int
    transpose: tuple[int, ...]
    target_spacing: tuple[float | None, ...]
    patch_size: tuple[int, ...]
    batch_size: int
    kernel_sizes: tuple[tuple[int, ...], ...]
    strides: tuple[tuple[int, ...], ...]
    filters: tuple[int, ...]
    deep_supervision_heads: int
    channel_names: tuple[str, ...]
    normalization: tuple[Normalization, ...]
    use_nonzero_mask: bool
    label_values: tuple[int, ...]
    label_names: dict[int, str]
    median_shape: tuple[int, ...]
    anisotropic: bool
    estimated_iteration_s: float
    estimated_iterations: int
    estimated_memory_mb: float
    budget: PlanBudget = field(default_factory=PlanBudget)
    notes: tuple[str, ...] = ()
    version: int = 1

    @property
    def spatial_dims(self) -> int:
        """Network spatial dimensions (2 or 3)."""
        return len(self.patch_size)

    @property
    def num_classes(self) -> int:
        """Network outputs, background included."""
        return len(self.label_values)

    @property
    def in_channels(self) -> int:
        return len(self.channel_names)

    @property
    def sample_patch_size(self) -> tuple[int, ...]:
        """Patch in data dims: ``(1, py, px)`` for the 2d configuration of 3D data."""
        if self.data_dims == 3 and self.spatial_dims == 2:
            return (1, *self.patch_size)
        return self.patch_size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        d = dict(data)
        if d.get("version") != 1:
            raise InputError(f"plans.json version {d.get('version')} is not supported")
        for key in ("transpose", "target_spacing", "patch_size", "filters", "median_shape"):
            d[key] = tuple(d[key])
        for key in ("channel_names", "label_values", "notes"):
            d[key] = tuple(d[key])
        d["kernel_sizes"] = tuple(tuple(k) for k in d["kernel_sizes"])
        d["strides"] = tuple(tuple(s) for s in d["strides"])
        d["normalization"] = tuple(Normalization(**n) for n in d["normalization"])
        d["label_names"] = {int(k): v for k, v in d["label_names"].items()}
        d["budget"] = PlanBudget(**d["budget"])
        return cls(**d)


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


def save_plan(plan: Plan, path: str | Path) -> Path:
    """Write ``plans.json`` (indented, atomically)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(plan.to_dict(), indent=2) + "\n")
    return path


def load_plan(path: str | Path) -> Plan:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no plans.json (run medseg auto plan first)")
    try:
        return Plan.from_dict(json.loads(path.read_text()))
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a valid medseg plan ({exc})") from exc


def with_overrides(plan: Plan, **changes: Any) -> Plan:
    """A copy of ``plan`` with fields replaced (e.g. ``batch_size=4``)."""
    return replace(plan, **changes)
