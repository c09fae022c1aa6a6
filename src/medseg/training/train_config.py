"""Options and result of a ``medseg auto`` training run (``medseg.training.trainer``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medseg.errors import InputError
from medseg.training.augment import AugmentConfig
from medseg.training.noise import check_label_noise

__all__ = ["TrainConfig", "TrainResult"]


@dataclass(frozen=True)
class TrainConfig:
    """Training options (serialised to ``train_config.json`` in the fold folder).

    Exactly one of ``time_budget_s`` and ``iterations`` must be set. ``stop_after`` ends the
    session after that many iterations as an interruption would (checkpoint, no final).
    """

    fold: int | str = 0
    time_budget_s: float | None = None
    iterations: int | None = None
    target_epochs: int = 50
    initial_lr: float = 1e-2
    momentum: float = 0.99
    weight_decay: float = 3e-5
    grad_clip: float = 12.0
    oversample_foreground: float = 0.33
    val_patches: int = 8
    deep_supervision: bool = True
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    timing_iterations: int = 5
    seed: int = 0
    stop_after: int | None = None
    checkpoint_every_s: float = 60.0
    #: noisy labels (:mod:`medseg.training.noise`): none, robust, gce or correct
    label_noise: str = "none"
    #: semi-supervised (:mod:`medseg.training.semisup`): cache ids of unlabelled cases
    #: (empty = off) and the weight of their copy-paste loss
    unlabeled: tuple[str, ...] = ()
    unlabeled_weight: float = 1.0

    def __post_init__(self) -> None:
        if (self.time_budget_s is None) == (self.iterations is None):
            raise InputError("give either a time budget or a number of iterations")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise InputError(f"time budget must be positive, got {self.time_budget_s}")
        if self.iterations is not None and self.iterations < 1:
            raise InputError(f"iterations must be >= 1, got {self.iterations}")
        check_label_noise(self.label_noise)
        if self.unlabeled_weight < 0:
            raise InputError(f"unlabeled weight must be >= 0, got {self.unlabeled_weight}")


@dataclass(frozen=True)
class TrainResult:
    """What :meth:`Trainer.train` returns: iterations done and planned, seconds of training,
    whether the schedule ended (not interrupted), the best moving-average pseudo-Dice and the
    per-epoch history (``training_log.json``)."""

    iterations: int
    total_iterations: int
    elapsed_s: float
    finished: bool
    best_ema_dice: float
    history: list[dict[str, Any]]
