"""Interaction protocols and the benchmark configuration (frozen dataclasses, JSON-serialisable).

A protocol says which prompt starts a target (``box``, ``click`` or ``scribble``), which prompt
corrects it (``click``, ``scribble`` or none) and how many interactions there are in all
(the first prompt counts as interaction 1). Named protocols:

- ``box``: the target's box (optionally jittered), one interaction.
- ``clicks``: a positive click at the target's innermost pixel, then corrective clicks.
- ``box+clicks``: the box, then corrective clicks (box and all clicks are passed each time).
- ``scribble``: a scribble in the target, then corrective scribbles.
- ``cvpr24``: CVPR 2024 "MedSAM on laptop": the exact (unjittered) box, one interaction;
  DSC and NSD at 2 mm, NSD set to 0 when DSC <= 0.2; runtime per case.
- ``cvpr25``: CVPR 2025 interactive 3D challenge: the box, then 5 clicks (6 interactions);
  clicks by the challenge's rule (components of ``pred != gt``, random tie-break); DSC/NSD
  AUC over the 5 click steps and final DSC/NSD; NSD at 2 mm, 0 when DSC <= 0.2.

Every correction passes the previous prediction back as ``mask_input``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from medseg.errors import InputError
from medseg.prompts.simulation import ClickConfig, ScribbleConfig

__all__ = [
    "Protocol",
    "BenchConfig",
    "PROTOCOL_NAMES",
    "make_protocol",
]

PROTOCOL_NAMES = ("box", "clicks", "box+clicks", "scribble", "cvpr24", "cvpr25")


@dataclass(frozen=True)
class Protocol:
    """One interaction protocol (see the module docstring).

    Attributes:
        name: protocol name used in reports.
        initial: first prompt: ``"box"``, ``"click"`` or ``"scribble"``.
        correction: corrective prompt: ``"click"``, ``"scribble"`` or ``"none"``.
        max_interactions: interactions per target, the first prompt included.
        box_jitter: each box side moves by up to this fraction of the box size.
        click: click rule (error regions, tie-break).
        scribble: scribble shape rule.
        nsd_tolerance_mm: NSD tolerance in mm (pixels when the image has no spacing).
        nsd_min_dice: NSD is set to 0 when Dice <= this value (challenge rule); None = off.
        use_mask_input: pass the previous prediction back as ``mask_input``.
        challenge: ``"cvpr24"`` / ``"cvpr25"`` adds that challenge's case-level metrics.
    """

    name: str
    initial: Literal["box", "click", "scribble"]
    correction: Literal["click", "scribble", "none"]
    max_interactions: int
    box_jitter: float = 0.0
    click: ClickConfig = field(default_factory=ClickConfig)
    scribble: ScribbleConfig = field(default_factory=ScribbleConfig)
    nsd_tolerance_mm: float = 2.0
    nsd_min_dice: float | None = None
    use_mask_input: bool = True
    challenge: str | None = None

    def __post_init__(self) -> None:
        if self.initial not in ("box", "click", "scribble"):
            raise InputError(f"protocol {self.name}: unknown initial prompt {self.initial!r}")
        if self.correction not in ("click", "scribble", "none"):
            raise InputError(f"protocol {self.name}: unknown correction {self.correction!r}")
        if int(self.max_interactions) < 1:
            raise InputError(f"max interactions must be >= 1, got {self.max_interactions}")
        if self.correction == "none" and self.max_interactions != 1:
            raise InputError(f"protocol {self.name} has no corrections: max_interactions is 1")
        if not 0.0 <= self.box_jitter <= 1.0:
            raise InputError(f"box jitter must be in [0, 1], got {self.box_jitter}")
        if self.nsd_tolerance_mm <= 0:
            raise InputError(f"NSD tolerance must be positive, got {self.nsd_tolerance_mm}")

    @property
    def uses_box(self) -> bool:
        return self.initial == "box"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def make_protocol(
    name: str,
    *,
    max_interactions: int = 10,
    box_jitter: float = 0.0,
    nsd_tolerance_mm: float = 2.0,
) -> Protocol:
    """The named protocol; ``cvpr24``/``cvpr25`` ignore the arguments (fixed by the challenge)."""
    if name == "box":
        return Protocol(name, "box", "none", 1, box_jitter, nsd_tolerance_mm=nsd_tolerance_mm)
    if name == "clicks":
        return Protocol(name, "click", "click", max_interactions, nsd_tolerance_mm=nsd_tolerance_mm)
    if name == "box+clicks":
        return Protocol(
            name, "box", "click", max_interactions, box_jitter, nsd_tolerance_mm=nsd_tolerance_mm
        )
    if name == "scribble":
        return Protocol(
            name, "scribble", "scribble", max_interactions, nsd_tolerance_mm=nsd_tolerance_mm
        )
    if name == "cvpr24":
        return Protocol(name, "box", "none", 1, 0.0, nsd_min_dice=0.2, challenge="cvpr24")
    if name == "cvpr25":
        click = ClickConfig(error_regions="combined", tie_break="random")
        return Protocol(
            name, "box", "click", 6, 0.0, click=click, nsd_min_dice=0.2, challenge="cvpr25"
        )
    raise InputError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOL_NAMES)}")


@dataclass(frozen=True)
class BenchConfig:
    """Everything that defines a benchmark run (stored in ``results.json``).

    Attributes:
        models: registered model names.
        protocols: protocols to run, each on every target.
        seed: seed of every random choice (box jitter, tie-breaks, scribbles, target sampling).
        limit: at most this many cases per dataset (sorted by id); None = all.
        max_targets_per_case: at most this many targets per case (a seeded sample); None = all.
        components: each connected component of a class is its own target.
        instances: label maps hold instances (each value one object); None = read the
            shared-data ``manifest.json`` where there is one, else semantic.
        min_area: targets with fewer pixels (on the evaluated slice) are skipped.
        volume: 3D cases with box-only protocols are prompted with a 3D box on the whole
            volume (``box3d``) and scored in 3D; otherwise the max-area slice is used.
        noc_thresholds: NoC thresholds (on ``noc_metric``).
        noc_metric: ``"dice"`` or ``"iou"``.
        noc_cap: NoC of a target that never reaches the threshold.
        jobs: cases run in parallel (one Predictor per worker).
        gallery_size: worst targets shown per model and protocol.
        threads: torch CPU threads of every model that has a ``num_threads`` option
            (:mod:`medseg.bench.factory`); None leaves each model's default.
        model_options: per model name, options passed to ``Predictor(name, **options)``
            (e.g. ``{"litemedsam-clicks": {"decoder_weights": "w.pt"}}``); they win over
            the thread option.
    """

    models: tuple[str, ...]
    protocols: tuple[Protocol, ...]
    seed: int = 0
    limit: int | None = None
    max_targets_per_case: int | None = None
    components: bool = False
    instances: bool | None = None
    min_area: int = 1
    volume: bool = False
    noc_thresholds: tuple[float, ...] = (0.85, 0.90)
    noc_metric: Literal["dice", "iou"] = "dice"
    noc_cap: int = 20
    jobs: int = 1
    gallery_size: int = 6
    threads: int | None = None
    model_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.models:
            raise InputError("give at least one --model")
        if not self.protocols:
            raise InputError("give at least one --protocol")
        names = [p.name for p in self.protocols]
        if len(set(names)) != len(names):
            raise InputError(f"protocols repeat: {names}")
        if self.limit is not None and self.limit < 1:
            raise InputError(f"--limit must be >= 1, got {self.limit}")
        if self.max_targets_per_case is not None and self.max_targets_per_case < 1:
            raise InputError(f"--max-targets must be >= 1, got {self.max_targets_per_case}")
        if self.noc_metric not in ("dice", "iou"):
            raise InputError(f"NoC metric must be 'dice' or 'iou', got {self.noc_metric!r}")
        if self.noc_cap < 1 or self.jobs < 1 or self.min_area < 1 or self.gallery_size < 0:
            raise InputError("noc cap, jobs and min area must be >= 1, gallery size >= 0")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads must be >= 1, got {self.threads}")
        if any(not 0 < t <= 1 for t in self.noc_thresholds):
            raise InputError(f"NoC thresholds must be in (0, 1], got {self.noc_thresholds}")
        unknown = sorted(set(self.model_options) - set(self.models))
        if unknown:
            raise InputError(f"model options for models not benchmarked: {unknown}")
        if self.volume and any(p.correction != "none" for p in self.protocols):
            raise InputError("volume mode (3D box prompts) works with box-only protocols")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
