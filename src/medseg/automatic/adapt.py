"""Test-time adaptation of a trained ``medseg auto`` model (TENT, Wang et al. ICLR 2021,
with a class-balance term).

``medseg auto predict MODEL IMAGES OUT --adapt`` adapts the model to each image without
labels before predicting it:

- **what is adapted**: only the scale and shift (``weight``, ``bias``) of the normalisation
  layers (the DynUNet's InstanceNorm layers, which normalise with each patch's own
  statistics); every convolution stays as trained;
- **objective**: the mean per-voxel Shannon entropy of the softmax prediction (TENT) plus
  ``balance`` times ``KL(q || pi)``, where ``q`` is the ``(K,)`` mean softmax over the
  batch's voxels and ``pi`` the training class frequencies of ``MODEL/fingerprint.json``
  (entropy alone collapses towards the majority class; the term keeps the predicted
  class mix near the training one), on random patches of the preprocessed image,
  minimised with Adam. A model folder without recorded class frequencies adapts with the
  entropy alone (logged);
- **safeguard**: with ``reject_worse`` the adapted copy is dropped (the image is predicted
  by the trained networks) when the objective on fixed evaluation patches did not fall;
- **per image, episodic**: every image starts again from the weights on disk, so one
  unusual image cannot drift the model for the next ones and the result of an image does
  not depend on the order of the folder;
- **bounded**: at most ``steps`` optimiser steps per fold and at most ``max_seconds`` per
  image (all folds together);
- **non-destructive**: the networks adapted are deep copies; the loaded model and the
  checkpoints on disk are never changed.

Arrays follow :mod:`medseg.automatic.preprocess`: a preprocessed image is ``(C, *sp)`` with
``sp`` in the plan's transposed order (2D ``(Y, X)``, 3D ``(Z, Y, X)``); a 2D plan on a 3D
image samples patches from single slices along the first axis.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medseg.automatic.adapt_terms import (
    MIN_PRIOR,
    class_balance,
    flip_consistency,
    load_class_prior,
    mask_agreement,
    prediction_entropy,
    sample_patches,
)
from medseg.automatic.model import AutoModel
from medseg.errors import InputError
from medseg.io.image import Image, LabelMap

__all__ = [
    "MIN_PRIOR",
    "AdaptConfig",
    "AdaptReport",
    "AdaptedModel",
    "adapt_network",
    "class_balance",
    "flip_consistency",
    "load_class_prior",
    "mask_agreement",
    "norm_affine_parameters",
    "prediction_entropy",
    "sample_patches",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdaptConfig:
    """Bounds and optimiser of the adaptation.

    ``steps``: optimiser steps per fold and image; ``max_seconds``: wall-clock bound per
    image (checked before every step); ``lr``: Adam learning rate; ``batch_size``: random
    patches per step; ``seed``: patch sampling seed (the same for every image);
    ``balance``: weight of the class-balance term (0 = entropy only, plain TENT);
    ``reject_worse``: keep the trained networks for an image whose objective on the fixed
    evaluation patches did not fall; ``consistency``: weight of the mirror-consistency term
    (:func:`flip_consistency`, 0 = none); ``min_agreement``: keep the trained networks for an
    image whose adapted argmax on the fixed evaluation patches agrees with the trained one
    by less than this mean foreground Dice (:func:`mask_agreement`, 0 = no check);
    ``eval_patches``: number of fixed evaluation patches.
    """

    steps: int = 10
    max_seconds: float = 60.0
    lr: float = 1e-3
    batch_size: int = 2
    seed: int = 0
    balance: float = 1.0
    reject_worse: bool = False
    consistency: float = 0.0
    min_agreement: float = 0.0
    eval_patches: int = 4

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise InputError(f"adaptation steps must be >= 1, got {self.steps}")
        if not self.max_seconds > 0:
            raise InputError(f"adaptation time must be > 0 s, got {self.max_seconds}")
        if not self.lr > 0:
            raise InputError(f"adaptation learning rate must be > 0, got {self.lr}")
        if self.batch_size < 1:
            raise InputError(f"adaptation batch size must be >= 1, got {self.batch_size}")
        if not self.balance >= 0:
            raise InputError(f"adaptation class-balance weight must be >= 0, got {self.balance}")
        if not self.consistency >= 0:
            raise InputError(f"adaptation consistency weight must be >= 0, got {self.consistency}")
        if not 0 <= self.min_agreement <= 1:
            raise InputError(f"adaptation agreement must be in [0, 1], got {self.min_agreement}")
        if self.eval_patches < 1:
            raise InputError(f"adaptation evaluation patches must be >= 1, got {self.eval_patches}")


@dataclass(frozen=True)
class AdaptReport:
    """What one adaptation did: steps taken, seconds, parameters, entropy before/after
    (mean per-voxel entropy in nats on the fixed evaluation patches), the class-balance
    KL before/after (``nan`` without a prior), the objective (entropy + weight * KL
    + weight * consistency), the agreement of the adapted with the trained argmax
    (:func:`mask_agreement`) and whether the adapted copy was kept (``False``: rejected by
    ``reject_worse`` or ``min_agreement``, reason in ``rejected``)."""

    steps: int
    seconds: float
    parameters: int
    tensors: int
    entropy_before: float
    entropy_after: float
    balance_before: float = float("nan")
    balance_after: float = float("nan")
    objective_before: float = float("nan")
    objective_after: float = float("nan")
    kept: bool = True
    agreement: float = float("nan")
    rejected: str = ""

    def line(self) -> str:
        kl = (
            f", class KL {self.balance_before:.4f} -> {self.balance_after:.4f}"
            if np.isfinite(self.balance_before)
            else ""
        )
        return (
            f"{self.steps} step(s) in {self.seconds:.1f} s on {self.parameters} normalisation "
            f"scale/shift values ({self.tensors} tensors), entropy {self.entropy_before:.4f} "
            f"-> {self.entropy_after:.4f}{kl}"
            f", agreement {self.agreement:.4f}"
            f"{'' if self.kept else f' (rejected: {self.rejected})'}"
        )


def norm_affine_parameters(net: Any) -> list[Any]:
    """The affine ``weight``/``bias`` tensors of every normalisation layer of ``net``
    (batch, instance, group and layer norm)."""
    import torch

    kinds = (torch.nn.modules.batchnorm._NormBase, torch.nn.GroupNorm, torch.nn.LayerNorm)
    params = []
    for module in net.modules():
        if isinstance(module, kinds):
            params.extend(p for p in (module.weight, module.bias) if p is not None)
    return params


def _batches(data: np.ndarray, patch: Sequence[int], cfg: AdaptConfig) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(cfg.seed)
    while True:
        yield sample_patches(data, patch, cfg.batch_size, rng)


def _objective(net: Any, x: Any, prior: Any, cfg: AdaptConfig) -> tuple[Any, Any, Any, Any]:
    """(objective, entropy, KL, logits) of ``net`` on the batch ``x``; KL is ``None``
    without a prior or with weight 0."""
    logits = net(x)
    entropy = prediction_entropy(logits)
    loss = entropy
    if cfg.consistency > 0:
        loss = loss + cfg.consistency * flip_consistency(net, x, logits)
    if prior is None or cfg.balance == 0:
        return loss, entropy, None, logits
    kl = class_balance(logits, prior)
    return loss + cfg.balance * kl, entropy, kl, logits


def _evaluate(
    net: Any, fixed: Any, prior: Any, cfg: AdaptConfig
) -> tuple[list[float], np.ndarray, int]:
    """([objective, entropy, KL], argmax ``(B, *patch)``, class count K) on the fixed
    patches."""
    import torch

    with torch.no_grad():
        *values, logits = _objective(net, fixed, prior, cfg)
    return [_value(v) for v in values], logits.argmax(dim=1).cpu().numpy(), logits.shape[1]


def _rejection(cfg: AdaptConfig, steps: int, before: float, after: float, agree: float) -> str:
    """Why the adapted copy is dropped (``""``: kept): the objective on the fixed patches
    did not fall (``reject_worse``) or the agreement is below ``min_agreement``."""
    if steps and cfg.reject_worse and not after < before:
        return "objective not lower"
    if steps and agree < cfg.min_agreement:
        return f"agreement {agree:.4f} < {cfg.min_agreement:g}"
    return ""


def adapt_network(
    net: Any,
    data: np.ndarray,
    patch_size: Sequence[int],
    cfg: AdaptConfig,
    *,
    deadline: float | None = None,
    prior: np.ndarray | None = None,
) -> tuple[Any, AdaptReport]:
    """A copy of ``net`` whose normalisation affine parameters minimise the prediction
    entropy (+ ``cfg.balance`` * :func:`class_balance` against ``prior``, ``(K,)`` class
    frequencies, when given, + ``cfg.consistency`` * :func:`flip_consistency`) on patches
    of ``data`` (``(C, *sp)``, preprocessed); ``net`` is unchanged.

    Stops after ``cfg.steps`` steps or at ``deadline`` (``time.perf_counter()`` value;
    default ``cfg.max_seconds`` from now). The copy is returned in eval mode; when
    ``cfg.reject_worse`` or ``cfg.min_agreement`` rejects it (:func:`_rejection`, on the
    ``cfg.eval_patches`` fixed evaluation patches), ``net`` itself is returned
    (``report.kept`` False).
    """
    import torch

    t0 = time.perf_counter()
    deadline = t0 + cfg.max_seconds if deadline is None else deadline
    device = next(net.parameters()).device
    adapted, params = _adaptable_copy(net)
    opt = torch.optim.Adam(params, lr=cfg.lr)
    pri = None if prior is None else torch.as_tensor(prior, dtype=torch.float32, device=device)
    fixed = _fixed_patches(data, patch_size, cfg, device)
    before, labels_before, k = _evaluate(adapted, fixed, pri, cfg)
    steps = 0
    for batch in _batches(data, patch_size, cfg):
        if steps >= cfg.steps or time.perf_counter() >= deadline:
            break
        loss = _objective(adapted, torch.from_numpy(batch).to(device), pri, cfg)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
    adapted.requires_grad_(False)
    after, labels_after, _ = _evaluate(adapted, fixed, pri, cfg)
    agreement = mask_agreement(labels_before, labels_after, k)
    rejected = _rejection(cfg, steps, before[0], after[0], agreement)
    kept = not rejected
    report = AdaptReport(
        steps=steps,
        seconds=time.perf_counter() - t0,
        parameters=sum(p.numel() for p in params),
        tensors=len(params),
        entropy_before=before[1],
        entropy_after=after[1],
        balance_before=before[2],
        balance_after=after[2],
        objective_before=before[0],
        objective_after=after[0],
        kept=kept,
        agreement=agreement,
        rejected=rejected,
    )
    return (adapted if kept else net), report


def _fixed_patches(data: np.ndarray, patch_size: Sequence[int], cfg: AdaptConfig, device: Any):
    """The ``cfg.eval_patches`` evaluation patches (seed ``cfg.seed + 1``) as a tensor."""
    import torch

    rng = np.random.default_rng(cfg.seed + 1)
    return torch.from_numpy(sample_patches(data, patch_size, cfg.eval_patches, rng)).to(device)


def _adaptable_copy(net: Any) -> tuple[Any, list[Any]]:
    """A deep copy of ``net`` in eval mode with only its normalisation scale/shift trainable."""
    adapted = copy.deepcopy(net).eval()
    adapted.requires_grad_(False)
    params = norm_affine_parameters(adapted)
    if not params:
        raise InputError("the network has no normalisation layer with scale/shift to adapt")
    for p in params:
        p.requires_grad_(True)
    return adapted, params


def _value(v: Any) -> float:
    return float("nan") if v is None else float(v)


class AdaptedModel:
    """An :class:`AutoModel` that adapts a copy of its fold networks to every image before
    predicting it (module docstring); ``predict(image)`` has ``AutoModel.predict``'s contract.

    Attributes:
        prior: ``(K,)`` training class frequencies used by the class-balance term, or
            ``None`` (no term: ``config.balance`` is 0 or the model folder records none).
        reports: one list of :class:`AdaptReport` (one per fold) per predicted image.
    """

    def __init__(self, model: AutoModel, config: AdaptConfig | None = None) -> None:
        self.model = model
        self.cfg = config or AdaptConfig()
        self.plan = model.plan
        self.prior = (
            load_class_prior(model.dir, model.plan.label_values) if self.cfg.balance > 0 else None
        )
        self.reports: list[list[AdaptReport]] = []

    def predict(self, image: Image) -> LabelMap:
        """Adapt the fold networks to ``image`` (2D ``(H, W)`` / 3D ``(Z, Y, X)``, channels
        last if several), then predict it with the adapted copies."""
        from medseg.automatic.preprocess import preprocess_image

        plan = self.model.plan
        if (image.num_channels if image.channels else 1) != plan.in_channels:
            return self.model.predict(image)  # the model's own error message
        data, _ = preprocess_image(image, plan)
        deadline = time.perf_counter() + self.cfg.max_seconds
        networks, reports = [], []
        for net in self.model.networks:
            adapted, report = adapt_network(
                net, data, plan.patch_size, self.cfg, deadline=deadline, prior=self.prior
            )
            networks.append(adapted)
            reports.append(report)
            log.info("adapted fold network: %s", report.line())
        del data
        self.reports.append(reports)
        view = copy.copy(self.model)  # shares plan and config; only the networks differ
        view.networks = networks
        return view.predict(image)

    def objective(self) -> str:
        """The adaptation objective in words, with the prior's values."""
        if self.prior is None:
            why = "weight 0" if self.cfg.balance == 0 else "no class frequencies recorded"
            return f"prediction entropy only ({why})"
        names = self.plan.label_names
        pri = ", ".join(
            f"{names.get(v, v)} {p:.3f}"
            for v, p in zip(self.plan.label_values, self.prior, strict=True)
        )
        return (
            f"prediction entropy + {self.cfg.balance:g} x KL(mean prediction || training "
            f"class frequencies: {pri})"
        )

    def summary(self) -> str:
        """What was adapted and with which objective, for the CLI and the logs."""
        flat = [r for image in self.reports for r in image]
        if not flat:
            return "--adapt: nothing was predicted"
        before = np.mean([r.entropy_before for r in flat])
        after = np.mean([r.entropy_after for r in flat])
        kl = ""
        if self.prior is not None:
            kl_b = np.mean([r.balance_before for r in flat])
            kl_a = np.mean([r.balance_after for r in flat])
            kl = f", class KL {kl_b:.4f} -> {kl_a:.4f}"
        rejected = sum(not r.kept for r in flat)
        guard = ""
        if self.cfg.reject_worse or self.cfg.min_agreement > 0:
            guard = (
                f", {rejected} of {len(flat)} adaptation(s) rejected (objective not lower"
                f" or label agreement with the trained model < {self.cfg.min_agreement:g})"
            )
        if self.cfg.consistency > 0:
            guard += f", mirror-consistency weight {self.cfg.consistency:g}"
        return (
            f"--adapt (TENT): normalisation scale/shift of {len(self.model.networks)} fold "
            f"network(s) ({flat[0].parameters} values each) adapted per image and reset "
            f"between images, objective {self.objective()}, lr {self.cfg.lr:g}, "
            f"{sum(r.steps for r in flat)} step(s) over {len(self.reports)} "
            f"image(s) (<= {self.cfg.steps} per fold, <= {self.cfg.max_seconds:g} s per "
            f"image), mean prediction entropy {before:.4f} -> {after:.4f}{kl}{guard}; "
            "weights on disk unchanged"
        )
