"""Training-time augmentation for classification batches.

Geometric: random flips and a small random affine (rotation, scale, shift) on the whole batch
``(B, C, H, W)`` / ``(B, C, Z, Y, X)`` (torch). Photometric: with probability ``corrupt_p`` a
sample gets one MedMNIST-C corruption (random family, severity 1..5), so the network sees the
shifts it is tested against.

:func:`corrupted_copy` is the feature head's counterpart (``tinyvit``, whose encoder is
frozen): one corrupted copy of the training images, each image under one corruption of the
data set's official MedMNIST-C set (generic set for other data), Gaussian noise with
probability ``noise_p`` else a family drawn uniformly, at a random severity 1..5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from medseg.classify.corrupt import CORRUPTIONS, SEVERITIES, corrupt, corruption_names
from medseg.errors import InputError

__all__ = ["AugmentConfig", "augment_batch", "corrupted_copy", "NOISE_FAMILY"]

NOISE_FAMILY = "gaussian_noise"  # in the generic and in every official 2D set


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation strengths; ``AugmentConfig(enabled=False)`` passes batches through.

    Attributes:
        flip_axes: spatial axes (0 = first spatial axis) flipped with probability 0.5 each.
        rotate_deg: maximum rotation in the (Y, X) plane (2D and 3D).
        scale: maximum relative zoom in or out.
        shift: maximum shift as a fraction of the image size.
        corrupt_p: probability that a sample gets one random corruption.
    """

    enabled: bool = True
    flip_axes: tuple[int, ...] = (-1,)
    rotate_deg: float = 15.0
    scale: float = 0.1
    shift: float = 0.08
    corrupt_p: float = 0.5


def _affine_matrices(n: int, dims: int, cfg: AugmentConfig, rng: np.random.Generator) -> Any:
    """``(n, dims, dims + 1)`` random affine matrices for ``affine_grid``."""
    import torch

    theta = np.zeros((n, dims, dims + 1), dtype=np.float32)
    for i in range(n):
        a = math.radians(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
        s = 1.0 + rng.uniform(-cfg.scale, cfg.scale)
        rot = np.eye(dims)
        rot[:2, :2] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
        theta[i, :, :dims] = rot / s
        theta[i, :, dims] = rng.uniform(-cfg.shift, cfg.shift, dims) * 2
    return torch.from_numpy(theta)


def augment_batch(x: Any, cfg: AugmentConfig, rng: np.random.Generator) -> Any:
    """Augmented copy of a float batch ``(B, C, *spatial)`` in ``[0, 1]`` (torch tensor)."""
    import torch
    import torch.nn.functional as F

    if not cfg.enabled:
        return x
    dims = x.ndim - 2
    if cfg.corrupt_p > 0:
        arr = x.numpy().copy()
        names = sorted(CORRUPTIONS)
        for i in np.flatnonzero(rng.random(len(arr)) < cfg.corrupt_p):
            name = names[rng.integers(len(names))]
            arr[i] = corrupt(arr[i], name, int(rng.choice(SEVERITIES)), rng)
        x = torch.from_numpy(arr)
    for axis in cfg.flip_axes:
        flip = torch.from_numpy(rng.random(len(x)) < 0.5)
        if flip.any():
            x = x.clone()
            x[flip] = x[flip].flip(axis if axis < 0 else 2 + axis)
    if cfg.rotate_deg or cfg.scale or cfg.shift:
        theta = _affine_matrices(len(x), dims, cfg, rng)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return x.clamp(0.0, 1.0)


def corrupted_copy(
    images: np.ndarray,
    rng: np.random.Generator,
    dataset: str | None = None,
    noise_p: float = 0.5,
) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """One corrupted copy of ``images`` ``(N, C, *spatial)`` in ``[0, 1]`` (numpy).

    Image ``i`` gets :data:`NOISE_FAMILY` with probability ``noise_p``, else a family drawn
    uniformly from ``corruption_names(dataset)``, at a severity drawn uniformly from 1..5;
    draws are made image by image from ``rng`` (family choice, severity, then the
    corruption's own draws), so a seeded generator gives the same copy every time.

    Returns:
        ``(copy, applied)``: float32 ``(N, C, *spatial)`` and ``(family, severity)`` per image.
    """
    if not 0.0 <= noise_p <= 1.0:
        raise InputError(f"noise_p must be in [0, 1], got {noise_p}")
    names = corruption_names(dataset)
    if NOISE_FAMILY not in names:
        raise InputError(f"{dataset!r} has no {NOISE_FAMILY} corruption")
    out = np.empty(np.shape(images), np.float32)
    applied = []
    for i, img in enumerate(images):
        noisy = rng.random() < noise_p
        name = NOISE_FAMILY if noisy else names[int(rng.integers(len(names)))]
        severity = int(rng.choice(SEVERITIES))
        out[i] = corrupt(img, name, severity, rng, dataset)
        applied.append((name, severity))
    return out, applied
