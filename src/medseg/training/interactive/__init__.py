"""Training of ``medseg-interactive`` with simulated interactions (``medseg train interactive``).

Modules: ``split`` (fixed held-out cases), ``data`` (targets from dataset folders),
``synthetic`` (superpixel and drawn-shape targets, augmentation), ``samples`` (network-frame
crops), ``simulate`` (first and corrective prompts), ``trainer`` (loop, checkpoints,
resume, time budget). Torch is imported only where used.
"""

from __future__ import annotations

from medseg.training.interactive.split import HELD_OUT, is_held_out
from medseg.training.interactive.trainer import InteractiveTrainConfig, TrainState, train

__all__ = ["HELD_OUT", "is_held_out", "InteractiveTrainConfig", "TrainState", "train"]
