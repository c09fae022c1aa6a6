"""Objective terms, agreement measure and patch sampling of the test-time adaptation
(:mod:`medseg.automatic.adapt`).

Logits are ``(B, K, *patch)`` torch tensors (batch, classes, spatial axes in the plan's
order); a preprocessed image is a ``(C, *sp)`` numpy array.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError

log = logging.getLogger("medseg.automatic.adapt")

__all__ = [
    "MIN_PRIOR",
    "class_balance",
    "flip_consistency",
    "load_class_prior",
    "mask_agreement",
    "prediction_entropy",
    "sample_patches",
]


def prediction_entropy(logits: Any) -> Any:
    """Mean over batch and voxels of the softmax entropy of ``(B, K, *patch)`` logits."""
    import torch

    logp = torch.log_softmax(logits, dim=1)
    return -(logp.exp() * logp).sum(dim=1).mean()


def class_balance(logits: Any, prior: Any) -> Any:
    """``KL(q || prior)`` in nats, ``q`` = the ``(K,)`` mean softmax of ``(B, K, *patch)``
    logits over batch and voxels; ``prior``: ``(K,)`` tensor of positive class frequencies
    summing to 1."""
    import torch

    k = logits.shape[1]
    q = torch.softmax(logits, dim=1).transpose(0, 1).reshape(k, -1).mean(dim=1)
    return (q * (torch.log(q.clamp_min(1e-12)) - torch.log(prior))).sum()


def flip_consistency(net: Any, x: Any, logits: Any) -> Any:
    """Augmentation consistency: the mean over batch and voxels of
    ``sum_k (p_k - p'_k)^2``, ``p`` = softmax of ``logits`` (``net(x)``, ``(B, K, *patch)``)
    and ``p'`` = softmax of ``net`` on ``x`` mirrored along every spatial axis, mirrored
    back. 0 when the prediction commutes with the mirroring."""
    import torch

    axes = tuple(range(2, x.ndim))
    flipped = torch.flip(torch.softmax(net(torch.flip(x, axes)), dim=1), axes)
    return ((torch.softmax(logits, dim=1) - flipped) ** 2).sum(dim=1).mean()


def mask_agreement(a: Any, b: Any, num_classes: int) -> float:
    """Mean Dice between two label maps (same shape, values ``0..num_classes-1``) over the
    foreground classes ``1..num_classes-1`` present in either; 1.0 when no foreground class
    is present in both maps' union."""
    scores = []
    for k in range(1, num_classes):
        ma, mb = a == k, b == k
        total = int(ma.sum()) + int(mb.sum())
        if total:
            scores.append(2.0 * int((ma & mb).sum()) / total)
    return float(np.mean(scores)) if scores else 1.0


def sample_patches(
    data: np.ndarray, patch_size: Sequence[int], n: int, rng: np.random.Generator
) -> np.ndarray:
    """``n`` random patches ``(n, C, *patch_size)`` of a ``(C, *sp)`` array.

    Axes shorter than the patch are zero-padded at the end (as the sliding window pads);
    with a 2D patch on 3D data each patch comes from one random slice of the first axis.
    """
    if data.ndim - 1 == len(patch_size) + 1:
        slices = rng.integers(0, data.shape[1], n)
        return np.concatenate(
            [sample_patches(data[:, z], patch_size, 1, rng) for z in slices], axis=0
        )
    if data.ndim - 1 != len(patch_size):
        raise InputError(f"patch {tuple(patch_size)} does not fit data of shape {data.shape}")
    pad = [(0, 0)] + [(0, max(0, p - s)) for p, s in zip(patch_size, data.shape[1:], strict=True)]
    data = np.pad(data, pad) if any(b for _, b in pad) else data
    out = np.empty((n, data.shape[0], *patch_size), dtype=np.float32)
    for i in range(n):
        starts = [
            int(rng.integers(0, s - p + 1)) for s, p in zip(data.shape[1:], patch_size, strict=True)
        ]
        window = (slice(a, a + p) for a, p in zip(starts, patch_size, strict=True))
        out[i] = data[(slice(None), *window)]
    return out


#: Smallest prior class frequency used (a class absent from the fingerprint would make the
#: KL infinite).
MIN_PRIOR = 1e-4


def load_class_prior(model_dir: str | Path, label_values: Sequence[int]) -> np.ndarray | None:
    """The ``(K,)`` training class frequencies of ``model_dir/fingerprint.json`` in the order
    of ``label_values`` (clipped below at :data:`MIN_PRIOR`, renormalised), or ``None``
    (logged) when the file, its ``class_frequencies`` or one of the labels is missing."""
    path = Path(model_dir) / "fingerprint.json"
    try:
        freq = json.loads(path.read_text())["class_frequencies"]
        prior = np.array([float(freq[str(v)]) for v in label_values], dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning(
            "--adapt: no training class frequencies in %s (%s: %s); adapting with the "
            "entropy alone",
            path,
            type(err).__name__,
            err,
        )
        return None
    prior = np.maximum(prior, MIN_PRIOR)
    return prior / prior.sum()
