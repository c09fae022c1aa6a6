"""Self-configuring automatic segmentation (``medseg auto``): nnU-Net-style fingerprint,
plan, preprocessing cache, DynUNet training within a CPU time budget, DDP, reports.

Modules: ``fingerprint``, ``plan``, ``preprocess``, ``data`` (splits, patch sampling),
``augment``, ``network``, ``trainer`` (options in ``train_config``, pseudo-Dice in
``pseudo_dice``), ``ddp``, ``postprocess``, ``pipeline``, ``run``, ``report``, ``convert``,
``raters`` (training from several raters' labels). Only the light planning API is imported
here; torch-based modules are imported where used.
"""

from medseg.automatic.plan import Plan, PlanBudget, load_plan, save_plan
from medseg.training.fingerprint import Fingerprint, compute_fingerprint
from medseg.training.planning import plan_experiment

__all__ = [
    "Fingerprint",
    "compute_fingerprint",
    "Plan",
    "PlanBudget",
    "plan_experiment",
    "save_plan",
    "load_plan",
]
