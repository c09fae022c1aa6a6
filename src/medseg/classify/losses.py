"""Training losses of the classifiers: cross-entropy and two ordinal-aware variants.

All take logits ``(B, K)`` and labels ``(B,)`` (int64 class indices; multi-label: ``(B, K)``
0/1 floats, ``ce`` only) and return a scalar tensor. The network keeps its ``K`` outputs and
its softmax probabilities, so prediction, metrics and Grad-CAM do not change with the loss.

- ``ce``: cross-entropy (optional label smoothing); multi-label: per-label BCE.
- ``ordinal``: cross-entropy plus the mean binary cross-entropy of the ``K - 1`` cumulative
  probabilities ``P(y > k) = sum_{j > k} p_j`` against ``1[y > k]`` (a cumulative-link term
  on the softmax, as in CORAL / ordinal regression, without changing the head): confusing
  grade 0 with grade 4 costs more than with grade 1.
- ``sord``: soft ordinal labels (Diaz & Marathe, CVPR 2019): cross-entropy against
  ``q_j = softmax_j(-(j - y)^2)``, i.e. label smoothing toward the neighbouring grades.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from medseg.errors import InputError

__all__ = ["LOSSES", "check_loss", "make_loss", "ordinal_loss", "sord_targets", "sord_loss"]

log = logging.getLogger(__name__)

LOSSES = ("ce", "ordinal", "sord")


def check_loss(loss: str, task: str) -> None:
    """Raise InputError for an unknown loss or an ordinal loss on multi-label data; warn when
    a multi-class task is trained as ordered (class order = label order)."""
    if loss not in LOSSES:
        raise InputError(f"unknown loss {loss!r}; choose from {LOSSES}")
    if loss == "ce":
        return
    if task == "multi-label":
        raise InputError(f"loss {loss!r} needs one label per image; multi-label data takes 'ce'")
    if task == "multi-class":
        log.warning("loss %r treats the classes as ordered, in their listed order", loss)


def ordinal_loss(logits: Any, labels: Any, smoothing: float = 0.0) -> Any:
    """Cross-entropy + mean over ``k < K - 1`` of BCE(``P(y > k)``, ``1[y > k]``).

    Args:
        logits: ``(B, K)``.
        labels: ``(B,)`` int64 in ``[0, K)``.
        smoothing: label smoothing of the cross-entropy term.
    """
    import torch
    import torch.nn.functional as F

    ce = F.cross_entropy(logits, labels, label_smoothing=smoothing)
    k = logits.shape[1]
    if k < 2:
        return ce
    total = torch.logsumexp(logits, 1, keepdim=True)
    log_le = torch.logcumsumexp(logits, 1)[:, :-1] - total  # log P(y <= k), k < K - 1
    log_gt = torch.logcumsumexp(logits.flip(1), 1).flip(1)[:, 1:] - total  # log P(y > k)
    above = (labels[:, None] > torch.arange(k - 1, device=logits.device)).to(logits.dtype)
    bce = -(above * log_gt + (1 - above) * log_le)
    return ce + bce.mean()


def sord_targets(labels: Any, num_classes: int) -> Any:
    """Soft targets ``(B, K)``: ``q_j = exp(-(j - y)^2) / sum_i exp(-(i - y)^2)``."""
    import torch

    grades = torch.arange(num_classes, device=labels.device, dtype=torch.float32)
    return torch.softmax(-((grades[None] - labels[:, None].float()) ** 2), 1)


def sord_loss(logits: Any, labels: Any) -> Any:
    """Cross-entropy of ``logits (B, K)`` against :func:`sord_targets` of ``labels (B,)``."""
    import torch

    q = sord_targets(labels, logits.shape[1]).to(logits.dtype)
    return -(q * torch.log_softmax(logits, 1)).sum(1).mean()


def make_loss(task: str, loss: str = "ce", smoothing: float = 0.0) -> Callable[[Any, Any], Any]:
    """The loss callable ``(logits, labels) -> scalar`` of a task (see the module docstring)."""
    import torch.nn as nn

    check_loss(loss, task)
    if task == "multi-label":
        return nn.BCEWithLogitsLoss()
    if loss == "ordinal":
        return lambda logits, labels: ordinal_loss(logits, labels, smoothing)
    if loss == "sord":
        return sord_loss
    return nn.CrossEntropyLoss(label_smoothing=smoothing)
