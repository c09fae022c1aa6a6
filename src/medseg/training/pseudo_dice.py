"""nnU-Net's validation pseudo-Dice: per-class voxel counts over a batch of patches, then
the one Dice of :mod:`medseg.metrics` (:func:`~medseg.metrics.overlap.dice_from_counts`).

Counts are summed over all patches (and, under DDP, over ranks) before the Dice, as nnU-Net
does. A class with no voxel in predictions or references of any patch gets NaN (not the
metrics' both-empty 1.0): it says nothing about the model and is left out of the mean.
"""

from __future__ import annotations

import math

import torch

from medseg.metrics.overlap import dice_from_counts

__all__ = ["class_counts", "pseudo_dice"]


def class_counts(
    pred: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """``(3, K)`` float64 counts ``(|P ∩ T|, |P \\ T|, |T \\ P|)`` per class (column 0 zero).

    Args:
        pred: ``(B, *spatial)`` predicted class indices.
        target: ``(B, *spatial)`` reference class indices.
        annotated: ``(B, K)`` bool; sample ``b`` counts for class ``c`` only when
            ``annotated[b, c]`` (partial labels).
        num_classes: ``K``, background included.
    """
    stats = torch.zeros(3, num_classes, dtype=torch.float64)
    for c in range(1, num_classes):
        keep = annotated[:, c].view(-1, *[1] * (pred.ndim - 1))  # samples annotating class c
        p, t = (pred == c) & keep, (target == c) & keep
        stats[:, c] = torch.tensor(
            [float((p & t).sum()), float((p & ~t).sum()), float((~p & t).sum())]
        )
    return stats


def pseudo_dice(counts: torch.Tensor) -> list[float]:
    """Dice of each foreground class from :func:`class_counts` (NaN: no voxel at all)."""
    tp, fp, fn = (counts[i].tolist() for i in range(3))
    return [
        dice_from_counts(tp[c], tp[c] + fp[c], tp[c] + fn[c]) if tp[c] + fp[c] + fn[c] else math.nan
        for c in range(1, counts.shape[1])
    ]
