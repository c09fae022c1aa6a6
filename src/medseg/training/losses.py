"""Marginal Dice + cross-entropy for partially labelled cases (DoDNet / marginal loss).

A case that annotates only the classes in a set ``A`` says nothing about the others: a voxel
labelled background there may belong to an unannotated class. The marginal loss therefore
merges, per sample, the softmax probabilities of background and of every unannotated class
into one "background" channel before cross-entropy, and computes the Dice term only for
annotated foreground classes. When every class is annotated it is MONAI's
``DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)``
(the loss :class:`medseg.training.trainer.Trainer` uses), on the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "DICE_SMOOTH",
    "marginal_dice_ce",
    "marginal_deep_supervision",
    "marginal_dice",
    "marginal_log_p",
    "merged_mask",
]

DICE_SMOOTH = 1e-5  # MONAI DiceLoss's smooth_nr and smooth_dr


def merged_mask(annotated: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(B, K)`` bool: True for the classes merged into the background channel."""
    if annotated.ndim != 2 or annotated.shape[1] != num_classes:
        raise ValueError(
            f"annotated must be (B, {num_classes}) booleans, got shape {tuple(annotated.shape)}"
        )
    merged = ~annotated.bool()
    merged[:, 0] = True  # background always belongs to the merged channel
    return merged


def marginal_log_p(
    logits: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor
) -> torch.Tensor:
    """``(B, *spatial)`` log-probability of each voxel's target: ``log p`` of the target
    class, or for a target in the merged set (background or a class the sample does not
    annotate) the log of the summed probability of that set. Arguments as
    :func:`marginal_dice_ce`."""
    merged = merged_mask(annotated.to(logits.device), logits.shape[1])
    merged_b = merged.view(*merged.shape, *([1] * (logits.ndim - 2)))
    t = target[:, 0].long()
    log_p = F.log_softmax(logits, dim=1)
    log_merged = torch.logsumexp(log_p.masked_fill(~merged_b, float("-inf")), dim=1)
    log_t = log_p.gather(1, t[:, None])[:, 0]
    t_merged = merged.gather(1, t.flatten(1)).view_as(t)
    return torch.where(t_merged, log_merged, log_t)


def marginal_dice(
    logits: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor
) -> torch.Tensor:
    """The Dice term of :func:`marginal_dice_ce` (scalar tensor; same arguments)."""
    k = logits.shape[1]
    merged = merged_mask(annotated.to(logits.device), k)
    merged_b = merged.view(*merged.shape, *([1] * (logits.ndim - 2)))
    t = target[:, 0].long()
    probs = torch.softmax(logits, dim=1)
    onehot = F.one_hot(t, k).movedim(-1, 1).to(probs.dtype)
    weight = (~merged_b).to(probs.dtype)  # 1 where the sample annotates the class
    axes = [0, *range(2, logits.ndim)]
    inter = torch.sum(onehot * probs * weight, dim=axes)[1:]
    denom = (torch.sum(onehot * weight, dim=axes) + torch.sum(probs * weight, dim=axes))[1:]
    f = 1.0 - (2.0 * inter + DICE_SMOOTH) / (denom + DICE_SMOOTH)
    present = (~merged[:, 1:]).any(dim=0)
    return torch.mean(f[present]) if bool(present.any()) else logits.sum() * 0.0


def marginal_dice_ce(
    logits: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor
) -> torch.Tensor:
    """Marginal Dice + CE loss (scalar tensor).

    Args:
        logits: ``(B, K, *spatial)`` raw network outputs for ``K`` classes (class 0 =
            background).
        target: ``(B, 1, *spatial)`` class indices (any numeric dtype).
        annotated: ``(B, K)`` bool, ``annotated[b, k]`` = sample ``b``'s case annotates class
            ``k`` (column 0 is ignored: background is always part of the merged channel).

    Returns:
        ``CE + Dice``: CE is the mean over voxels of ``-log p`` of the target class, where for
        a target in the merged set (background or an unannotated class) ``p`` is the summed
        probability of that set; Dice is the mean over foreground classes annotated in at
        least one sample of ``1 - (2 I + s) / (G + P + s)``, summed over batch and space of
        the samples that annotate the class only (``s = 1e-5``); 0 when no sample annotates
        any foreground class.
    """
    ce = -marginal_log_p(logits, target, annotated).mean()
    return marginal_dice(logits, target, annotated) + ce


def marginal_deep_supervision(
    outputs: torch.Tensor | Sequence[torch.Tensor],
    target: torch.Tensor,
    annotated: torch.Tensor,
    level_loss: Callable[..., torch.Tensor] | None = None,
) -> torch.Tensor:
    """:func:`marginal_dice_ce` over deep-supervision outputs, as MONAI's
    ``DeepSupervisionLoss(weight_mode="exp")``: weights ``max(0.5**l, 0.0625)`` per level
    ``l``, the target resized to each output with ``nearest-exact`` interpolation.

    Args:
        outputs: one ``(B, K, *spatial)`` tensor or a list of them (full resolution first).
        target: ``(B, 1, *spatial)`` class indices at full resolution.
        annotated: ``(B, K)`` bool (see :func:`marginal_dice_ce`).
        level_loss: the loss of one level, ``f(logits, target, annotated)`` (default
            :func:`marginal_dice_ce`; :mod:`medseg.training.noise` passes a robust one).
    """
    fn = marginal_dice_ce if level_loss is None else level_loss
    if isinstance(outputs, torch.Tensor):
        return fn(outputs.float(), target, annotated)
    loss = torch.tensor(0, dtype=torch.float, device=target.device)
    for level, out in enumerate(outputs):
        t = target
        if out.shape[2:] != t.shape[2:]:
            t = F.interpolate(t, size=out.shape[2:], mode="nearest-exact")
        loss += max(0.5**level, 0.0625) * fn(out.float(), t, annotated)
    return loss
