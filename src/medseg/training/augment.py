"""Batched data augmentation on torch tensors (nnU-Net's recipe, reduced).

Spatial: random rotation and scaling (one ``grid_sample`` per batch, applied to images with
linear and to labels with nearest interpolation), then mirroring. Intensity: Gaussian noise,
brightness, contrast and gamma. Written by hand rather than with MONAI's per-sample
dictionary transforms because one batched ``affine_grid``/``grid_sample`` call on the whole
batch costs a fraction of per-sample grid construction on a CPU, and the training loop here
is CPU-bound.

Input patches are *extended* patches (see :func:`extended_patch_size`) so that rotated
output corners still fall inside sampled data; the output is the centred ``patch_size``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["AugmentConfig", "extended_patch_size", "spatial_augment", "intensity_augment"]


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges (per sample) of each augmentation."""

    p_rotate: float = 0.2
    max_rotation_deg: float = 30.0
    p_scale: float = 0.2
    scale_range: tuple[float, float] = (0.7, 1.4)
    p_mirror: float = 0.5
    p_noise: float = 0.1
    noise_std: float = 0.1
    p_brightness: float = 0.15
    brightness_range: tuple[float, float] = (0.75, 1.25)
    p_contrast: float = 0.15
    contrast_range: tuple[float, float] = (0.75, 1.25)
    p_gamma: float = 0.3
    gamma_range: tuple[float, float] = (0.7, 1.5)
    in_plane_only: bool = False


def extended_patch_size(patch: Sequence[int], cfg: AugmentConfig) -> tuple[int, ...]:
    """Patch to sample before rotation: large enough for the rotated patch's corners.

    Axes of size 1 (2D slices of 3D data) stay 1; the margin keeps ``ext - patch`` even so
    an unrotated sample is an exact centre crop.
    """
    angle = math.radians(min(cfg.max_rotation_deg, 45.0)) if cfg.p_rotate > 0 else 0.0
    factor = abs(math.cos(angle)) + abs(math.sin(angle))
    out = []
    for p in patch:
        if p == 1:
            out.append(1)
            continue
        ext = math.ceil(p * factor)
        out.append(ext + (ext - p) % 2)
    return tuple(out)


def _rotation(dims: int, angles: torch.Tensor, in_plane_only: bool) -> torch.Tensor:
    """Rotation matrix in array axis order; 3D rotates about each axis in turn."""
    if dims == 2:
        c, s = torch.cos(angles[0]), torch.sin(angles[0])
        return torch.stack([torch.stack([c, -s]), torch.stack([s, c])])
    m = torch.eye(3)
    planes = [(1, 2)] if in_plane_only else [(1, 2), (0, 2), (0, 1)]
    for angle, (i, j) in zip(angles, planes, strict=False):
        r = torch.eye(3)
        c, s = torch.cos(angle), torch.sin(angle)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        m = r @ m
    return m


def _uniform(lo: float, hi: float, g: torch.Generator, n: int = 1) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def spatial_augment(
    images: torch.Tensor,
    labels: torch.Tensor,
    patch: Sequence[int],
    cfg: AugmentConfig,
    g: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate/scale/mirror a batch and cut the centred ``patch``.

    Args:
        images: ``(B, C, *ext)`` float; labels: ``(B, 1, *ext)`` int64 (same ``ext``).
        patch: output spatial size (network dims).

    Returns:
        ``(B, C, *patch)`` images and ``(B, 1, *patch)`` labels.
    """
    b, dims = images.shape[0], len(patch)
    ext = images.shape[2:]
    offs = [(e - p) // 2 for e, p in zip(ext, patch, strict=True)]
    crop = (slice(None), slice(None), *(slice(o, o + p) for o, p in zip(offs, patch, strict=True)))
    out_img, out_lab = images[crop].clone(), labels[crop].clone()
    n_angles = 1 if dims == 2 or cfg.in_plane_only else 3
    for i in range(b):
        rot = bool(torch.rand(1, generator=g) < cfg.p_rotate)
        scl = bool(torch.rand(1, generator=g) < cfg.p_scale)
        if not (rot or scl):
            continue
        lim = math.radians(cfg.max_rotation_deg)
        angles = _uniform(-lim, lim, g, n_angles) if rot else torch.zeros(n_angles)
        scale = float(_uniform(*cfg.scale_range, g)) if scl else 1.0
        m = _rotation(dims, angles, cfg.in_plane_only) / scale  # output -> input, voxel units
        half_ext = torch.tensor([e / 2 for e in ext], dtype=torch.float32)
        half_out = torch.tensor([p / 2 for p in patch], dtype=torch.float32)
        theta = torch.diag(1 / half_ext) @ m @ torch.diag(half_out)
        theta = theta.flip(0).flip(1)  # affine_grid wants (x, y[, z]) = reversed array axes
        theta = torch.cat([theta, torch.zeros(dims, 1)], dim=1)[None]
        grid = F.affine_grid(theta, [1, 1, *patch], align_corners=False)
        out_img[i] = F.grid_sample(images[i : i + 1], grid, mode="bilinear", align_corners=False)[0]
        lab = F.grid_sample(labels[i : i + 1].float(), grid, mode="nearest", align_corners=False)
        out_lab[i] = lab[0].long()
    for i in range(b):
        axes = [d + 1 for d in range(dims) if bool(torch.rand(1, generator=g) < cfg.p_mirror)]
        if axes:
            out_img[i] = out_img[i].flip(axes)
            out_lab[i] = out_lab[i].flip(axes)
    return out_img, out_lab


def intensity_augment(images: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Per-sample noise, brightness, contrast and gamma on ``(B, C, *sp)`` (new tensor)."""
    out = images.clone()
    dims = tuple(range(1, images.ndim))
    for i in range(out.shape[0]):
        x = out[i]
        if bool(torch.rand(1, generator=g) < cfg.p_noise):
            x = x + torch.randn(x.shape, generator=g) * cfg.noise_std * float(
                torch.rand(1, generator=g)
            )
        if bool(torch.rand(1, generator=g) < cfg.p_brightness):
            x = x * float(_uniform(*cfg.brightness_range, g))
        if bool(torch.rand(1, generator=g) < cfg.p_contrast):
            mean = x.mean(dim=tuple(d - 1 for d in dims), keepdim=True)
            lo, hi = float(x.min()), float(x.max())
            x = ((x - mean) * float(_uniform(*cfg.contrast_range, g)) + mean).clamp(lo, hi)
        if bool(torch.rand(1, generator=g) < cfg.p_gamma):
            lo, rng = x.min(), (x.max() - x.min()).clamp_min(1e-7)
            x = ((x - lo) / rng).pow(float(_uniform(*cfg.gamma_range, g))) * rng + lo
        out[i] = x
    return out
