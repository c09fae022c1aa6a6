"""Boundary-band loss for noisy labels (``--label-noise band``, part of ``robust``).

Annotators' (and the benchmark's) label noise is mostly a displaced boundary: a structure
drawn a voxel or two too thick or too thin. Those errors all lie in a thin band around the
noisy label's boundaries, so the Dice + CE loss skips every voxel within ``k`` voxels
(Chebyshev distance, i.e. a ``(2k+1)`` window) of a voxel with another label: ``k_fg``
for voxels labelled foreground, ``k_bg`` for voxels labelled background. The network is
supervised by the interiors, which are right, and places the boundary itself from the
image. With ``k_fg = k_bg = 0`` nothing is skipped and the loss is
:func:`medseg.training.losses.marginal_dice_ce`.

The band is computed on each (augmented) training patch's label at full resolution and
carried to the deep-supervision levels with the labels (nearest-exact resizing) by
encoding a skipped voxel of class ``c`` as ``c + K`` (:func:`encode_skipped`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medseg.training.losses import DICE_SMOOTH, marginal_log_p, merged_mask

__all__ = ["band_dice_ce", "boundary_band", "decode_skipped", "encode_skipped"]


def _window_extremes(t: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Max and min of ``t`` ``(B, 1, *spatial)`` over each voxel's ``(2k+1)`` window."""
    pool = F.max_pool2d if t.ndim == 4 else F.max_pool3d
    return pool(t, 2 * k + 1, 1, k), -pool(-t, 2 * k + 1, 1, k)


def boundary_band(target: torch.Tensor, k_fg: int, k_bg: int) -> torch.Tensor:
    """Voxels near a label boundary.

    Args:
        target: ``(B, 1, H, W)`` or ``(B, 1, D, H, W)`` class indices (any numeric dtype).
        k_fg: window half-width for voxels labelled foreground (``> 0``).
        k_bg: window half-width for voxels labelled background (``0``).

    Returns:
        ``(B, 1, *spatial)`` bool: True where another label occurs within Chebyshev
        distance ``k_fg`` (foreground voxels) or ``k_bg`` (background voxels); windows are
        clipped at the patch border. All False when both half-widths are 0.
    """
    if k_fg < 0 or k_bg < 0:
        raise ValueError(f"band half-widths must be >= 0, got {k_fg}, {k_bg}")
    t = target.float()
    band = torch.zeros_like(t, dtype=torch.bool)
    for k, labelled in ((k_fg, t > 0), (k_bg, t == 0)):
        if k > 0:
            hi, lo = _window_extremes(t, k)
            band |= labelled & (hi != lo)
    return band


def encode_skipped(target: torch.Tensor, skipped: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``target`` with each skipped voxel's class ``c`` stored as ``c + num_classes``."""
    return target + skipped.to(target.dtype) * num_classes


def decode_skipped(target: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`encode_skipped`: ``(class indices, kept-voxel mask)``."""
    kept = target < num_classes
    return torch.where(kept, target, target - num_classes), kept


def band_dice_ce(
    logits: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor
) -> torch.Tensor:
    """Dice + CE over the kept voxels of an :func:`encode_skipped` target (scalar).

    Args:
        logits: ``(B, K, *spatial)`` raw network outputs (class 0 = background).
        target: ``(B, 1, *spatial)`` class indices, ``+ K`` where the voxel is skipped.
        annotated: ``(B, K)`` bool, the classes each sample annotates.

    Returns:
        CE = mean of ``-log p`` (marginal, as :func:`medseg.training.losses.marginal_log_p`)
        over kept voxels (0 when none is kept) plus the marginal Dice term with skipped
        voxels removed from intersection, label and prediction sums; equal to
        :func:`medseg.training.losses.marginal_dice_ce` when no voxel is skipped.
    """
    k = logits.shape[1]
    t, kept = decode_skipped(target, k)
    w = kept.to(logits.dtype)  # (B, 1, *spatial)
    log_p = marginal_log_p(logits, t, annotated)
    ce = -(log_p * w[:, 0]).sum() / w.sum().clamp_min(1.0)
    merged = merged_mask(annotated.to(logits.device), k)
    merged_b = merged.view(*merged.shape, *([1] * (logits.ndim - 2)))
    probs = torch.softmax(logits, dim=1)
    onehot = F.one_hot(t[:, 0].long(), k).movedim(-1, 1).to(probs.dtype)
    weight = (~merged_b).to(probs.dtype) * w
    axes = [0, *range(2, logits.ndim)]
    inter = torch.sum(onehot * probs * weight, dim=axes)[1:]
    denom = (torch.sum(onehot * weight, dim=axes) + torch.sum(probs * weight, dim=axes))[1:]
    f = 1.0 - (2.0 * inter + DICE_SMOOTH) / (denom + DICE_SMOOTH)
    present = (~merged[:, 1:]).any(dim=0)
    dice = torch.mean(f[present]) if bool(present.any()) else logits.sum() * 0.0
    return dice + ce
