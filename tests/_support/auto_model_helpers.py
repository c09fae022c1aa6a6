"""Tiny trained ``medseg auto`` models for tests (a few seconds of CPU training).

``write_two_class_dataset``: 2D PNG cases with a bright disk (label 1, ``disk``) and a
mid-grey square (label 2, ``square``) on dark noise. ``train_tiny_model``: plan and train
fold 0 for a few iterations into a model folder. Loaded by test files with
``importlib`` (the tests run with ``--import-mode=importlib``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.io import save
from medseg.io.image import Image, LabelMap

__all__ = ["write_two_class_dataset", "two_class_case", "train_tiny_model"]


def two_class_case(
    rng: np.random.Generator, shape: Sequence[int] = (40, 40)
) -> tuple[np.ndarray, np.ndarray]:
    """One ``(H, W)`` uint8 image and its label map: disk (1) left, square (2) right."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    cy, cx, r = rng.uniform(0.35, 0.65) * h, rng.uniform(0.2, 0.32) * w, rng.uniform(5, 7)
    labels = np.zeros((h, w), np.uint8)
    labels[(y - cy) ** 2 + (x - cx) ** 2 <= r**2] = 1
    sy, sx, half = int(rng.uniform(0.35, 0.65) * h), int(rng.uniform(0.68, 0.78) * w), 7
    labels[sy - half : sy + half, sx - half : sx + half] = 2
    image = np.select([labels == 1, labels == 2], [200.0, 120.0], 40.0)
    image = (image + rng.normal(0, 8, (h, w))).clip(0, 255).astype(np.uint8)
    return image, labels


def write_two_class_dataset(root: Path, n_cases: int = 6, seed: int = 0) -> Path:
    """An nnU-Net raw dataset of :func:`two_class_case` images (plus 2 in ``imagesTs``)."""
    rng = np.random.default_rng(seed)
    for i in range(n_cases + 2):
        image, labels = two_class_case(rng)
        folder = "imagesTr" if i < n_cases else "imagesTs"
        save(Image(image), root / folder / f"case{i:02d}_0000.png")
        if i < n_cases:
            save(LabelMap(labels), root / "labelsTr" / f"case{i:02d}.png")
    meta = {
        "channel_names": {"0": "MR"},
        "labels": {"background": 0, "disk": 1, "square": 2},
        "numTraining": n_cases,
        "file_ending": ".png",
        "name": "two_classes",
    }
    (root / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    return root


def train_tiny_model(data: Path, out: Path, iterations: int = 60) -> Path:
    """Plan and train fold 0 of ``data`` into ``out`` (1 torch thread); returns ``out``."""
    import torch

    from medseg.automatic.plan import PlanBudget
    from medseg.training.pipeline import plan_dataset, train_fold
    from medseg.training.trainer import TrainConfig

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        plan_dataset(data, out, PlanBudget(time_budget_s=60, flops_per_second=1e9))
        cfg = TrainConfig(
            iterations=iterations, target_epochs=3, val_patches=2, timing_iterations=2
        )
        train_fold(data, out, cfg)
    finally:
        torch.set_num_threads(threads)
    return out
