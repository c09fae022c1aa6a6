"""The plan of a ``medseg auto`` model (``plans.json``): everything needed to rebuild the
network and preprocess an image as in training.

Axis conventions: ``Plan.transpose`` reorders the spatial axes of an array in medseg order
(2D ``(H, W)``, 3D ``(Z, Y, X)``) so that the lowest-resolution axis comes first; every
spatial field of the plan (``target_spacing``, ``patch_size``, kernels, strides,
``median_shape``) is given in that transposed order. In the ``2d`` configuration of a 3D
dataset the network sees slices along the first (transposed) axis; ``patch_size``,
``kernel_sizes`` and ``strides`` then have two entries and ``target_spacing[0]`` is None
(each case keeps its own slice spacing).

How a plan is chosen from a dataset is :mod:`medseg.training.planning`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from medseg.errors import InputError
from medseg.io.atomic import atomic_path

__all__ = ["PlanBudget", "Normalization", "Plan", "save_plan", "load_plan", "with_overrides"]


@dataclass(frozen=True)
class PlanBudget:
    """Resources the plan must fit: training seconds, bytes for activations, compute rate.

    ``flops_per_second`` is the measured rate of this machine on a DynUNet step
    (:func:`medseg.automatic.network.measure_flops_per_second`).
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
