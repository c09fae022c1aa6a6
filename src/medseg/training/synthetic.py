"""Tiny synthetic nnU-Net datasets (bright disks / balls on noise) for tests and smoke runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.errors import InputError
from medseg.io.image import Image, LabelMap

__all__ = ["write_disk_dataset"]


def write_disk_dataset(
    root: str | Path,
    n_cases: int = 6,
    shape: Sequence[int] = (64, 64),
    *,
    spacing: Sequence[float] | None = None,
    channel_names: Sequence[str] = ("MR",),
    n_test: int = 0,
    seed: int = 0,
) -> Path:
    """Write an nnU-Net raw dataset of noisy images with one bright disk (2D) or ball (3D).

    2D cases are uint8 PNG, 3D cases NIfTI with the given ``spacing`` (array order). The
    disk radius is 15-25% of the smallest physical extent; label 1 = disk. Extra channels
    are the first channel plus independent noise. ``n_test`` unlabelled cases go to
    ``imagesTs``.
    """
    from medseg.io import save

    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3):
        raise InputError(f"shape must be 2D or 3D, got {shape}")
    spacing = tuple(float(s) for s in (spacing or (1.0,) * len(shape)))
    root = Path(root)
    rng = np.random.default_rng(seed)
    ending = ".png" if len(shape) == 2 else ".nii.gz"
    grid = np.stack(
        np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing, strict=True)], indexing="ij")
    )
    extent = min(n * s for n, s in zip(shape, spacing, strict=True))
    for i in range(n_cases + n_test):
        centre = [rng.uniform(0.35, 0.65) * n * s for n, s in zip(shape, spacing, strict=True)]
        radius = rng.uniform(0.15, 0.25) * extent
        dist2 = sum((grid[d] - centre[d]) ** 2 for d in range(len(shape)))
        mask = (dist2 <= radius**2).astype(np.uint8)
        train = i < n_cases
        case = f"case{i:02d}"
        for c in range(len(channel_names)):
            img = 40 + 140 * mask + rng.normal(0, 12, shape)
            arr = img.clip(0, 255).astype(np.uint8) if ending == ".png" else img.astype(np.float32)
            folder = "imagesTr" if train else "imagesTs"
            save(Image(arr, spacing=spacing), root / folder / f"{case}_{c:04d}{ending}")
        if train:
            save(LabelMap(mask, spacing=spacing), root / "labelsTr" / f"{case}{ending}")
    meta = {
        "channel_names": {str(i): n for i, n in enumerate(channel_names)},
        "labels": {"background": 0, "disk": 1},
        "numTraining": n_cases,
        "file_ending": ending,
        "name": "synthetic_disks",
    }
    (root / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    return root
