"""Pieces of the semi-supervised recipe (:mod:`medseg.training.semisup`): its settings,
BCP's box copy-paste mixing, the unlabelled-loss schedule (warm-up + sigmoid ramp-up), the
teacher's confidence-masked pseudo-labels, the student's strong intensity perturbation,
the masked Dice/CE loss and the teacher's EMA update. Pure tensor functions, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from medseg.errors import InputError

__all__ = [
    "EMA_DECAY",
    "RAMPUP_FRACTION",
    "BOX_FRACTION",
    "SemisupRecipe",
    "box_mask",
    "copy_paste",
    "bidirectional_mix",
    "sigmoid_rampup",
    "unlabeled_weight_at",
    "warmup_iterations",
    "teacher_pseudo_labels",
    "strong_perturb",
    "masked_dice_ce",
    "ema_update",
]

#: Teacher weight decay of the EMA (BCP and Mean Teacher use 0.99).
EMA_DECAY = 0.99
#: The unlabelled loss weight ramps up over this share of the training iterations.
RAMPUP_FRACTION = 0.3
#: Side of the copy-paste box, as a share of the patch side (BCP: 2/3).
BOX_FRACTION = 2 / 3


@dataclass(frozen=True)
class SemisupRecipe:
    """Settings of the mean teacher + copy-paste training (see the module docstring).

    Attributes:
        ema_decay: teacher EMA decay.
        rampup_fraction: share of the post-warm-up iterations over which ``w`` ramps up.
        warmup_fraction: share of the iterations trained on labels only (0: none).
        confidence: teacher probability below which a pseudo-labelled pixel is ignored
            (0: every pixel counts).
        strong: strength ``s`` of :func:`strong_perturb` on the student's mixed input (0: off).
        box_fraction: copy-paste box side as a share of the patch side.
    """

    ema_decay: float = EMA_DECAY
    rampup_fraction: float = RAMPUP_FRACTION
    warmup_fraction: float = 0.0
    confidence: float = 0.0
    strong: float = 0.0
    box_fraction: float = BOX_FRACTION

    def __post_init__(self) -> None:
        for name in ("ema_decay", "rampup_fraction", "warmup_fraction", "confidence"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"semi-supervised {name} must be in [0, 1]: {getattr(self, name)}")
        if self.warmup_fraction >= 1.0:
            raise InputError("semi-supervised warmup_fraction must be below 1")
        if self.strong < 0 or not 0.0 < self.box_fraction <= 1.0:
            raise InputError(f"semi-supervised strong >= 0 and box_fraction in (0, 1]: {self}")


#: The recipe ``medseg auto train --unlabeled`` uses.


def box_mask(shape: tuple[int, ...], fraction: float, gen: torch.Generator) -> torch.Tensor:
    """``(B, 1, *sp)`` float mask of one random box per sample (1 inside, 0 outside).

    ``shape`` is ``(B, *sp)``; the box side on each axis is ``round(fraction * side)``
    (at least 1), its corner uniform over the positions that keep it inside.
    """
    b, spatial = shape[0], shape[1:]
    mask = torch.zeros((b, 1, *spatial))
    for i in range(b):
        box = []
        for side in spatial:
            size = min(side, max(1, round(fraction * side)))
            start = int(torch.randint(0, side - size + 1, (1,), generator=gen))
            box.append(slice(start, start + size))
        mask[(i, 0, *box)] = 1.0
    return mask


def copy_paste(
    base_img: torch.Tensor,
    base_lab: torch.Tensor,
    src_img: torch.Tensor,
    src_lab: torch.Tensor,
    mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste the box ``mask == 1`` of ``src`` into ``base``.

    Images ``(B, C, *sp)`` float, labels ``(B, 1, *sp)`` int64, ``mask`` ``(B, 1, *sp)``
    of 0/1. Returns ``base_img * (1 - mask) + src_img * mask`` and the label taken from
    ``src_lab`` inside the box and ``base_lab`` outside.
    """
    img = base_img * (1 - mask) + src_img * mask
    lab = torch.where(mask.bool(), src_lab, base_lab)
    return img, lab


def bidirectional_mix(
    x_l: torch.Tensor,
    y_l: torch.Tensor,
    x_u: torch.Tensor,
    p_u: torch.Tensor,
    mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BCP mixing of labelled ``(x_l, y_l)`` and unlabelled ``(x_u, p_u)`` (pseudo-label).

    Sample ``i`` pairs labelled ``i`` with unlabelled ``i``: even ``i`` paste the
    unlabelled box into the labelled image ("inward"), odd ``i`` the labelled box into the
    unlabelled image ("outward"). Shapes as in :func:`copy_paste`.
    """
    inward, in_lab = copy_paste(x_l, y_l, x_u, p_u, mask)
    outward, out_lab = copy_paste(x_u, p_u, x_l, y_l, mask)
    even = (torch.arange(x_l.shape[0]) % 2 == 0).view(-1, *[1] * (x_l.ndim - 1))
    return torch.where(even, inward, outward), torch.where(even, in_lab, out_lab)


def sigmoid_rampup(iteration: int, length: float) -> float:
    """``exp(-5 (1 - t)^2)`` for ``t = iteration / length`` clipped to [0, 1]; 1.0 when
    ``length <= 0``."""
    if length <= 0:
        return 1.0
    t = min(max(iteration / length, 0.0), 1.0)
    return float(math.exp(-5.0 * (1.0 - t) ** 2))


def unlabeled_weight_at(iteration: int, total: int, weight: float, recipe: SemisupRecipe) -> float:
    """Weight of the mixed loss at ``iteration`` (0-based) of ``total``: 0 before the
    warm-up end ``W = round(warmup_fraction * total)``, then ``weight`` times
    :func:`sigmoid_rampup` ``(iteration - W, rampup_fraction * (total - W))``."""
    warm = warmup_iterations(total, recipe)
    if iteration < warm:
        return 0.0
    return weight * sigmoid_rampup(iteration - warm, recipe.rampup_fraction * (total - warm))


def warmup_iterations(total: int, recipe: SemisupRecipe) -> int:
    """``round(warmup_fraction * total)``: the labels-only iterations."""
    return round(recipe.warmup_fraction * total)


def teacher_pseudo_labels(
    logits: torch.Tensor, confidence: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(argmax, keep)`` of teacher ``logits`` ``(B, K, *sp)``: labels ``(B, 1, *sp)``
    int64 and ``keep`` ``(B, 1, *sp)`` float, 1 where the softmax maximum is
    ``>= confidence`` (all 1 when ``confidence`` is 0)."""
    prob = torch.softmax(logits.float(), dim=1)
    top, label = prob.max(dim=1, keepdim=True)
    return label, (top >= confidence).float()


def strong_perturb(x: torch.Tensor, strength: float, gen: torch.Generator) -> torch.Tensor:
    """Strong intensity perturbation of ``(B, C, *sp)`` (z-scored) images, per sample:
    ``(x - m) * c + m + b + n`` with ``m`` the sample mean, contrast ``c ~ U(1 - s, 1 + s)``,
    shift ``b ~ U(-s, s)`` and Gaussian noise ``n`` of std ``s / 2`` (``s = strength``;
    drawn in this order from ``gen``). ``strength == 0`` returns ``x`` unchanged."""
    if strength <= 0:
        return x
    b = x.shape[0]
    view = (b, *[1] * (x.ndim - 1))
    c = 1.0 + strength * (2.0 * torch.rand(b, generator=gen) - 1.0)
    shift = strength * (2.0 * torch.rand(b, generator=gen) - 1.0)
    noise = torch.randn(x.shape, generator=gen) * (strength / 2.0)
    m = x.mean(dim=tuple(range(1, x.ndim)), keepdim=True)
    c, shift = c.view(view).to(x), shift.view(view).to(x)
    return (x - m) * c + m + shift + noise.to(x)


def _masked_dice_ce_one(
    logits: torch.Tensor, target: torch.Tensor, keep: torch.Tensor, eps: float
) -> torch.Tensor:
    k = logits.shape[1]
    prob = torch.softmax(logits.float(), dim=1)
    onehot = F.one_hot(target[:, 0].long(), k).movedim(-1, 1).to(prob)
    dims = (0, *range(2, logits.ndim))
    inter = (prob * onehot * keep).sum(dims)[1:]
    denom = ((prob + onehot) * keep).sum(dims)[1:]
    dice = 1.0 - (2.0 * inter + eps) / (denom + eps)
    nll = -(torch.log_softmax(logits.float(), dim=1) * onehot).sum(1, keepdim=True)
    ce = (nll * keep).sum() / keep.sum().clamp_min(1.0)
    return dice.mean() + ce


def masked_dice_ce(
    outs: torch.Tensor | list[torch.Tensor],
    target: torch.Tensor,
    keep: torch.Tensor,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Dice (batch, foreground classes) + cross-entropy of the pixels with ``keep == 1``.

    ``outs``: logits ``(B, K, *sp)`` or a list of deep-supervision heads (head ``i``
    weighted ``max(0.5 ** i, 0.0625)``, target and ``keep`` shrunk to it by nearest-exact
    neighbour, as MONAI's ``DeepSupervisionLoss(weight_mode="exp")``); ``target``
    ``(B, 1, *sp)`` int64; ``keep`` ``(B, 1, *sp)`` of 0/1. Dice of class ``c``:
    ``1 - (2 sum(keep p_c t_c) + eps) / (sum(keep (p_c + t_c)) + eps)``; CE: the mean over
    kept pixels (0 when none). With ``keep`` all 1 it equals MONAI's
    ``DiceCELoss(include_background=False, batch=True)``.
    """
    heads = list(outs) if isinstance(outs, list | tuple) else [outs]
    total = torch.zeros((), device=heads[0].device)
    for i, out in enumerate(heads):
        t, m = target, keep
        if out.shape[2:] != target.shape[2:]:
            t = F.interpolate(target.float(), size=out.shape[2:], mode="nearest-exact").long()
            m = F.interpolate(keep.float(), size=out.shape[2:], mode="nearest-exact")
        w = max(0.5**i, 0.0625) if len(heads) > 1 else 1.0
        total = total + w * _masked_dice_ce_one(out, t, m, eps)
    return total


@torch.no_grad()
def ema_update(
    teacher: torch.nn.Module, student: torch.nn.Module, decay: float, iteration: int
) -> float:
    """``teacher = a * teacher + (1 - a) * student`` per parameter, with
    ``a = min(1 - 1 / (iteration + 1), decay)`` (fast at the start); buffers are copied.
    Returns ``a``. ``iteration``: optimiser steps done (1 after the first)."""
    a = min(1.0 - 1.0 / (iteration + 1), decay)
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(a).add_(s.detach(), alpha=1.0 - a)
    for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
        t.copy_(s)
    return a
