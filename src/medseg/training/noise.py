"""Training on noisy labels (``medseg auto train|run --label-noise``).

Three methods, chosen between by measurement on validation cases
(``benchmarks/auto_label_noise.py``, see ``docs/auto.md``, "Noisy labels"); ``robust``
names the chosen one, ``band``:

- ``band``: Dice + CE that skips the band around the noisy labels' boundaries, where
  displaced outlines put their errors (:mod:`medseg.training.noise_band`; ``band_fg = 1``
  voxel inside foreground labels, ``band_bg = 2`` voxels outside them); optionally
  (``band_correct``) on targets corrected as in ``correct``.
- ``gce``: Dice + generalized cross-entropy (Zhang & Sabuncu, NeurIPS 2018) in place of the
  cross-entropy: ``(1 - p_y**q) / q`` per voxel, bounded by ``1/q`` (CE is unbounded, so a
  few confidently wrong labels dominate its gradient); ``q -> 0`` gives CE.
- ``correct``: label correction after the early-learning phase, after ADELE (Liu et al.,
  CVPR 2022): networks fit the clean part of noisy labels first and memorise the noise
  later, so from ``start`` (a fraction of the schedule) on, a voxel whose label differs from
  the prediction is relabelled with the prediction when the prediction is confident
  (``p >= threshold``) at full resolution and consistent with the next deep-supervision
  level (ADELE's multi-scale consistency, at no extra forward pass; confidence only without
  deep supervision). The usual Dice + CE is then computed on the corrected targets; the
  labels on disk are not changed. Corrections are made afresh every step from the current
  network, so no state beyond the iteration counter needs checkpointing.

All work with deep supervision and with partially labelled cases (the marginal loss of
:mod:`medseg.training.losses`: the GCE uses the marginal target probability; a correction
never relabels a voxel to a class its case does not annotate).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from medseg.errors import InputError
from medseg.training.losses import marginal_deep_supervision, marginal_dice, marginal_log_p
from medseg.training.noise_band import band_dice_ce, boundary_band, encode_skipped

__all__ = [
    "LABEL_NOISE_MODES",
    "ROBUST_METHOD",
    "NoiseConfig",
    "NoiseRobustLoss",
    "check_label_noise",
    "correct_targets",
    "dice_gce",
    "resolve_label_noise",
]

log = logging.getLogger(__name__)

#: ``--label-noise`` values: off, the measured choice, and the two candidates by name.
LABEL_NOISE_MODES = ("none", "robust", "gce", "correct", "band")
#: The method ``robust`` stands for (chosen on the validation cases of the benchmark).
ROBUST_METHOD = "band"


def check_label_noise(mode: str) -> None:
    """Raise :class:`InputError` unless ``mode`` is one of :data:`LABEL_NOISE_MODES`."""
    if mode not in LABEL_NOISE_MODES:
        raise InputError(
            f"unknown label-noise mode {mode!r}: use one of {', '.join(LABEL_NOISE_MODES)}"
        )


def resolve_label_noise(mode: str) -> str:
    """``none``, ``gce``, ``correct`` or ``band`` for a :data:`LABEL_NOISE_MODES` value."""
    check_label_noise(mode)
    return ROBUST_METHOD if mode == "robust" else mode


@dataclass(frozen=True)
class NoiseConfig:
    """``q``: GCE exponent in (0, 1]; ``start``: fraction of the schedule after which
    labels are corrected; ``threshold``: softmax probability a correction needs;
    ``band_fg`` / ``band_bg``: half-widths in voxels of the ignored band inside foreground /
    background labels (``band``); ``band_correct``: ``band`` also corrects labels."""

    q: float = 0.7
    start: float = 0.5
    threshold: float = 0.95
    band_fg: int = 1
    band_bg: int = 2
    band_correct: bool = False


def dice_gce(
    logits: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor, q: float = 0.7
) -> torch.Tensor:
    """Dice + generalized cross-entropy (scalar tensor).

    Args:
        logits: ``(B, K, *spatial)`` raw network outputs (class 0 = background).
        target: ``(B, 1, *spatial)`` class indices.
        annotated: ``(B, K)`` bool, the classes each sample annotates (all True for fully
            labelled data).
        q: GCE exponent in (0, 1].

    Returns:
        :func:`medseg.training.losses.marginal_dice` plus the voxel mean of
        ``(1 - p**q) / q``, ``p`` the (marginal) probability of the target.
    """
    p = marginal_log_p(logits, target, annotated).exp()
    return marginal_dice(logits, target, annotated) + ((1.0 - p.pow(q)) / q).mean()


def _probs_at(out: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Softmax of ``out`` ``(B, K, *s)`` linearly resized to ``size``."""
    probs = torch.softmax(out.detach().float(), dim=1)
    if tuple(probs.shape[2:]) == tuple(size):
        return probs
    mode = "bilinear" if probs.ndim == 4 else "trilinear"
    return F.interpolate(probs, size=tuple(size), mode=mode, align_corners=False)


def correct_targets(
    outputs: torch.Tensor | Sequence[torch.Tensor],
    target: torch.Tensor,
    annotated: torch.Tensor,
    threshold: float,
) -> tuple[torch.Tensor, int]:
    """Targets with confidently and consistently contradicted labels replaced.

    Args:
        outputs: ``(B, K, *spatial)`` logits or a deep-supervision list (full resolution
            first); only the first two levels are used, without gradient.
        target: ``(B, 1, *spatial)`` class indices (float or integer).
        annotated: ``(B, K)`` bool, the classes each sample annotates.
        threshold: softmax probability the predicted class needs at every level used.

    Returns:
        ``(corrected target, same shape and dtype; number of voxels changed)``. A voxel
        changes to the full-resolution argmax ``c`` when ``c`` differs from its label, has
        probability >= ``threshold`` there and (with deep supervision) is also the argmax
        with probability >= ``threshold`` of the second level resized to full size, and
        when ``c`` is background or a class the sample annotates.
    """
    levels = [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)[:2]
    size = target.shape[2:]
    conf, pred = _probs_at(levels[0], size).max(dim=1)
    ok = conf >= threshold
    if len(levels) > 1:
        conf1, pred1 = _probs_at(levels[1], size).max(dim=1)
        ok &= (pred1 == pred) & (conf1 >= threshold)
    allowed = annotated.to(pred.device).bool().clone()
    allowed[:, 0] = True
    ok &= allowed.gather(1, pred.flatten(1)).view_as(pred)
    ok &= pred != target[:, 0].long()
    corrected = torch.where(ok[:, None], pred[:, None].to(target.dtype), target)
    return corrected, int(ok.sum())


class NoiseRobustLoss:
    """The training loss under ``--label-noise MODE`` (``gce``, ``correct``, ``band`` or
    ``robust``); called by :meth:`medseg.training.trainer.Trainer._loss` for training
    steps only (validation keeps the plain loss)."""

    def __init__(self, mode: str, config: NoiseConfig | None = None) -> None:
        method = resolve_label_noise(mode)
        if method == "none":
            raise InputError("label-noise mode 'none' needs no robust loss")
        self.method, self.cfg = method, config or NoiseConfig()
        self.corrected_fraction = 0.0  # of the voxels of the last batch

    def __call__(
        self,
        outputs: torch.Tensor | Sequence[torch.Tensor],
        target: torch.Tensor,
        annotated: torch.Tensor,
        progress: float,
    ) -> torch.Tensor:
        """Loss of one batch; ``annotated`` ``(B, K)`` bool (all True when fully labelled),
        ``progress`` = iteration / total iterations in [0, 1]."""
        if self.method == "gce":
            q = self.cfg.q
            return marginal_deep_supervision(
                outputs, target, annotated, lambda o, t, a: dice_gce(o, t, a, q)
            )
        if self.method == "band":
            return self._band(outputs, target, annotated, progress)
        if progress >= self.cfg.start:
            target = self._corrected(outputs, target, annotated)
        return marginal_deep_supervision(outputs, target, annotated)

    def _corrected(
        self,
        outputs: torch.Tensor | Sequence[torch.Tensor],
        target: torch.Tensor,
        annotated: torch.Tensor,
    ) -> torch.Tensor:
        """``target`` after online label correction; records the corrected fraction."""
        target, n = correct_targets(outputs, target, annotated, self.cfg.threshold)
        self.corrected_fraction = n / max(target.numel(), 1)
        return target

    def _band(
        self,
        outputs: torch.Tensor | Sequence[torch.Tensor],
        target: torch.Tensor,
        annotated: torch.Tensor,
        progress: float,
    ) -> torch.Tensor:
        """Dice + CE without the boundary band of the (noisy) labels, optionally on
        corrected targets (the band stays that of the labels as given)."""
        cfg = self.cfg
        skipped = boundary_band(target, cfg.band_fg, cfg.band_bg)
        if cfg.band_correct and progress >= cfg.start:
            target = self._corrected(outputs, target, annotated)
        k = (outputs if isinstance(outputs, torch.Tensor) else outputs[0]).shape[1]
        encoded = encode_skipped(target, skipped, k)
        return marginal_deep_supervision(outputs, encoded, annotated, band_dice_ce)
