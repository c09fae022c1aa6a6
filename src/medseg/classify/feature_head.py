"""``tinyvit``: a small head on frozen LiteMedSAM TinyViT features (:mod:`.features`).

Training (:func:`fit_feature_head`) encodes the train and validation splits once (cached),
then fits a few heads (linear or one hidden layer; feature pool; L2 strength, see
:data:`HEAD_GRID`) on the standardised features and keeps the one with the best validation
score; the test split is not touched. :class:`FeatureClassifier` is the trained model: its
``predict_proba`` encodes (or reads from the cache) and applies the head.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg.classify.features import (
    DEFAULT_CACHE_DIR,
    FeatureCache,
    TinyViTEncoder,
    extract_features,
    select_features,
)
from medseg.classify.model import Classifier, ClassifierConfig
from medseg.errors import InputError, ModelError

__all__ = [
    "HEAD_GRID",
    "CACHE_ENV",
    "build_feature_head",
    "FeatureClassifier",
    "fit_feature_head",
    "set_encoder",
    "default_encoder",
    "default_cache",
]

log = logging.getLogger(__name__)

CACHE_ENV = "MEDSEG_FEATURE_CACHE"
# (feature pool, hidden units (0: linear), L2 penalty) tried in this order.
HEAD_GRID: tuple[tuple[str, int, float], ...] = tuple(
    (pool, hidden, l2)
    for pool in ("gap", "gap+2x2", "gap+max")
    for hidden in (0, 256)
    for l2 in (1e-4, 1e-3, 1e-2)
)
HEAD_EPOCHS = 60
HEAD_DROPOUT = 0.3
_encoder: Any = None


def set_encoder(encoder: Any | None) -> None:
    """Use ``encoder`` (plane ``(H, W[, 3])`` -> embedding ``(256, S, S)``, with an
    ``identity`` string for the cache) for every tinyvit model; None restores LiteMedSAM's."""
    global _encoder
    _encoder = encoder


def default_encoder() -> Any:
    """The encoder :func:`set_encoder` chose, else one shared :class:`TinyViTEncoder`."""
    global _encoder
    if _encoder is None:
        _encoder = TinyViTEncoder()
    return _encoder


def default_cache(root: str | Path | None = None) -> FeatureCache:
    """Feature cache at ``root``, else ``$MEDSEG_FEATURE_CACHE``, else
    ``~/.cache/medseg/classify``."""
    return FeatureCache(root or os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR)


def build_feature_head(config: ClassifierConfig) -> Any:
    """Head ``(B, feature_dim)`` -> logits ``(B, K)``: standardise (buffers ``mean``,
    ``scale``), dropout, then linear or ``Linear-ReLU-Dropout-Linear``."""
    import torch
    import torch.nn as nn

    dim, k, hidden = config.feature_dim, config.num_outputs, config.head_hidden
    if dim < 1:
        raise InputError(f"tinyvit head needs feature_dim >= 1, got {dim}")

    class FeatureHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.zeros(dim))
            self.register_buffer("scale", torch.ones(dim))
            if hidden:
                layers = [nn.Dropout(HEAD_DROPOUT), nn.Linear(dim, hidden), nn.ReLU()]
                layers += [nn.Dropout(HEAD_DROPOUT), nn.Linear(hidden, k)]
            else:
                layers = [nn.Dropout(HEAD_DROPOUT), nn.Linear(dim, k)]
            self.mlp = nn.Sequential(*layers)

        def forward(self, feats: torch.Tensor) -> torch.Tensor:
            return self.mlp((feats - self.mean) / self.scale)

    return FeatureHead()


class FeatureClassifier(Classifier):
    """A head on frozen TinyViT features; ``predict_proba`` takes images like every
    :class:`Classifier` (arrays in ``[0, 1]`` or files) and encodes them (cached).

    Args:
        config: a ``tinyvit`` configuration (pool, slices, head size in it).
        net: the head (default: built from ``config``, untrained).
        encoder: default :func:`default_encoder`.
        cache: default :func:`default_cache`.
    """

    def __init__(
        self,
        config: ClassifierConfig,
        net: Any | None = None,
        encoder: Any | None = None,
        cache: FeatureCache | None = None,
    ) -> None:
        super().__init__(config, net if net is not None else build_feature_head(config))
        self.encoder = encoder
        self.cache = cache if cache is not None else default_cache()
        self.progress: bool | None = None  # tqdm bar: None = only on a terminal

    def raw_features(self, images: np.ndarray | Sequence[str | Path]) -> np.ndarray:
        """Raw cached vectors ``(N, RAW_DIM)`` of images or files."""
        arr = self._as_array(images)
        return extract_features(
            arr,
            self.encoder if self.encoder is not None else default_encoder(),
            self.cache,
            slices=self.config.feature_slices,
            progress=self.progress,
        )

    def features(self, images: np.ndarray | Sequence[str | Path]) -> np.ndarray:
        """Head input ``(N, feature_dim)``."""
        return select_features(self.raw_features(images), self.config.feature_pool)

    def proba_from_features(self, feats: np.ndarray) -> np.ndarray:
        """Probabilities ``(N, K)`` of head inputs ``(N, feature_dim)``."""
        import torch

        self.net.eval()
        with torch.inference_mode():
            logits = self.net(torch.from_numpy(np.ascontiguousarray(feats, np.float32)))
            probs = logits.sigmoid() if self.config.task == "multi-label" else logits.softmax(1)
        return probs.numpy().astype(np.float64)

    def predict_proba(
        self, images: np.ndarray | Sequence[str | Path], batch_size: int = 64
    ) -> np.ndarray:
        """Probabilities ``(N, K)``; with ``tta`` averaged with the left-right flipped images."""
        arr = self._as_array(images)
        probs = self.proba_from_features(self.features(arr))
        if self.config.tta:
            flipped = np.ascontiguousarray(arr[..., ::-1])
            probs = (probs + self.proba_from_features(self.features(flipped))) / 2
        return probs


def _metrics(labels: np.ndarray, probs: np.ndarray, task: str) -> dict[str, float]:
    from medseg.classify.metrics import accuracy, auc

    return {"auc": auc(labels, probs, task), "acc": accuracy(labels, probs, task)}


def _train_head(
    clf: FeatureClassifier,
    feats: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    opts: Any,
    l2: float,
) -> tuple[float, int, dict[str, float], float]:
    """Fit ``clf.net`` on ``feats["train"]`` (AdamW, batch ``opts.batch_size``, cosine lr,
    ``HEAD_EPOCHS``); keeps the epoch with the best score on ``feats["val"]``. Returns
    ``(score, epoch, val metrics, loss)``."""
    import torch

    from medseg.classify.train import _loss_fn, _val_score

    net, task = clf.net, clf.config.task
    x = torch.from_numpy(feats["train"])
    y = torch.from_numpy(labels["train"])
    y = y.float() if task == "multi-label" else y
    net.mean.copy_(x.mean(0))
    net.scale.copy_(x.std(0).clamp_min(1e-6))
    loss_fn = _loss_fn(task, opts.label_smoothing, opts.loss)
    opt = torch.optim.AdamW(net.parameters(), lr=opts.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(opts.seed)
    steps = HEAD_EPOCHS * math.ceil(len(x) / opts.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    best = (-math.inf, -1, {}, float("nan"), copy.deepcopy(net.state_dict()))
    for epoch in range(HEAD_EPOCHS):
        net.train()
        losses = []
        for idx in torch.randperm(len(x), generator=gen).split(opts.batch_size):
            loss = loss_fn(net(x[idx]), y[idx])
            weights = [p for n, p in net.named_parameters() if n.endswith("weight")]
            penalty = l2 * sum((w**2).sum() for w in weights)
            opt.zero_grad(set_to_none=True)
            (loss + penalty).backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        val = _metrics(labels["val"], clf.proba_from_features(feats["val"]), task)
        score = _val_score(opts.select, val)
        if score > best[0]:
            best = (score, epoch, val, float(np.mean(losses)), copy.deepcopy(net.state_dict()))
    net.load_state_dict(best[4])
    net.eval()
    return best[0], best[1], best[2], best[3]


def _train_images(ds: Any, opts: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The head's training images and labels: the train split, then
    ``opts.feature_augment_copies`` augmented copies, then ``opts.feature_corrupt_copies``
    corrupted copies (the data set's official MedMNIST-C set, :func:`corrupted_train_copy`;
    each of a seeded random ``opts.feature_corrupt_fraction`` of the train images)."""
    from medseg.classify.corrupt_sets import official_set_name

    x, y = ds.images["train"], ds.labels["train"]
    n_aug = opts.feature_augment_copies or 0
    images = [x] + [_augmented(x, opts, j) for j in range(n_aug)]
    labels = [y] * (1 + n_aug)
    dataset = official_set_name(ds.source) if x.ndim == 4 else None
    for j in range(opts.feature_corrupt_copies or 0):
        idx = corrupt_subset(len(x), opts.feature_corrupt_fraction, opts.seed, j)
        noise_p = opts.feature_corrupt_noise_p
        images.append(corrupted_train_copy(x, opts.seed, j, dataset, noise_p)[idx])
        labels.append(y[idx])
    return images, labels


def corrupt_subset(n: int, fraction: float, seed: int, copy_index: int) -> np.ndarray:
    """Sorted indices of the ``ceil(fraction * n)`` train images (at least one) that corrupted
    copy ``copy_index`` keeps, drawn by a generator seeded by ``seed`` and the copy;
    ``fraction`` 1: all ``n``."""
    if not 0.0 < fraction <= 1.0:
        raise InputError(f"feature_corrupt_fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0:
        return np.arange(n)
    m = max(1, math.ceil(fraction * n))
    rng = np.random.default_rng([seed, 3000 + copy_index])
    return np.sort(rng.choice(n, m, replace=False))


def _encode_splits(
    ds: Any, opts: Any, config: ClassifierConfig, enc: Any, cache: FeatureCache
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Raw features and labels of ``train`` (with its copies, :func:`_train_images`) and
    ``val``: ``({split: (N, RAW_DIM)}, {split: (N,) or (N, K)})``."""

    def encode(x: np.ndarray, desc: str) -> np.ndarray:
        return extract_features(
            x, enc, cache, slices=config.feature_slices, progress=opts.progress or None,
            desc=f"tinyvit features ({desc})",
        )  # fmt: skip

    images, train_labels = _train_images(ds, opts)
    parts = [encode(x, "train" if j == 0 else f"train copy {j}") for j, x in enumerate(images)]
    raw = {"train": np.concatenate(parts), "val": encode(ds.images["val"], "val")}
    return raw, {"train": np.concatenate(train_labels), "val": ds.labels["val"]}


def fit_feature_head(
    ds: Any, opts: Any, config: ClassifierConfig, encoder: Any | None = None
) -> tuple[FeatureClassifier, list[dict[str, Any]], int]:
    """Encode train (and its copies) and val once, fit the heads of :data:`HEAD_GRID` (until
    ``opts.time_budget_s``, at least one), keep the best on validation. Returns
    ``(classifier, history, best)``: one history row per head tried (``epoch`` = its index),
    ``best`` the chosen row."""
    import torch

    if opts.threads:
        torch.set_num_threads(opts.threads)
    torch.manual_seed(opts.seed)
    enc = encoder if encoder is not None else default_encoder()
    cache = default_cache(opts.feature_cache)
    raw, labels = _encode_splits(ds, opts, config, enc, cache)
    start = time.monotonic()
    history: list[dict[str, Any]] = []
    best_score, best_idx, best_clf = -math.inf, 0, None
    for i, (pool, hidden, l2) in enumerate(HEAD_GRID[: opts.max_epochs]):
        if i and time.monotonic() - start >= opts.time_budget_s:
            log.info("time budget reached after %d head(s)", i)
            break
        feats = {s: select_features(r, pool) for s, r in raw.items()}
        cfg = _with_head(config, pool, hidden, feats["train"].shape[1])
        clf = FeatureClassifier(cfg, None, enc, cache)
        score, epoch, val, loss = _train_head(clf, feats, labels, opts, l2)
        history.append(
            {"epoch": i, "pool": pool, "hidden": hidden, "l2": l2, "head_epoch": epoch,
             "loss": loss, "elapsed_s": time.monotonic() - start,
             **{f"val_{k}": v for k, v in val.items()}}
        )  # fmt: skip
        log.info("head %d %s hidden=%d l2=%g: val %s", i, pool, hidden, l2, val)
        if score > best_score:
            best_score, best_idx, best_clf = score, i, clf
    if best_clf is None:  # every head scored NaN (cannot happen with two classes in val)
        raise ModelError("no tinyvit head could be scored on the validation split")
    return best_clf, history, best_idx


def _augmented(images: np.ndarray, opts: Any, copy_index: int) -> np.ndarray:
    """One augmented copy of the train images ``(N, C, ...)`` (``opts.augment``, seeded by
    ``opts.seed`` and the copy, so a rerun gives the same images and hits the cache)."""
    import torch

    from medseg.classify.augment import augment_batch

    rng = np.random.default_rng([opts.seed, 1000 + copy_index])
    parts = [
        augment_batch(
            torch.from_numpy(np.ascontiguousarray(images[i : i + 256])), opts.augment, rng
        )
        for i in range(0, len(images), 256)
    ]
    return np.concatenate([p.numpy() for p in parts]).clip(0.0, 1.0).astype(np.float32)


def corrupted_train_copy(
    images: np.ndarray, seed: int, copy_index: int, dataset: str | None, noise_p: float
) -> np.ndarray:
    """Corrupted copy ``copy_index`` of the train images ``(N, C, ...)``
    (:func:`medseg.classify.augment.corrupted_copy`, generator seeded by ``seed`` and the
    copy, so a rerun gives the same images and hits the feature cache)."""
    from medseg.classify.augment import corrupted_copy

    rng = np.random.default_rng([seed, 2000 + copy_index])
    return corrupted_copy(images, rng, dataset, noise_p)[0]


def _with_head(config: ClassifierConfig, pool: str, hidden: int, dim: int = 1) -> ClassifierConfig:
    return dataclasses.replace(config, feature_pool=pool, head_hidden=hidden, feature_dim=dim)


def _torch_pool(emb: Any, pool: str) -> Any:
    """:func:`features.select_features` of :func:`features.pool_embedding`, differentiable:
    embeddings ``(B, 256, S, S)`` -> head inputs ``(B, D)``."""
    import torch
    import torch.nn.functional as F

    grid = F.adaptive_avg_pool2d(emb, 4)
    parts = [grid.mean((2, 3))]
    if pool == "gap+max":
        parts.append(emb.amax((2, 3)))
    if "2x2" in pool:
        parts.append(F.avg_pool2d(grid, 2).flatten(1))
    if "4x4" in pool:
        parts.append(grid.flatten(1))
    return torch.cat(parts, 1)


def gradcam_features(
    clf: FeatureClassifier, images: np.ndarray, target: np.ndarray | None = None
) -> np.ndarray:
    """Grad-CAM on the frozen TinyViT embedding (the encoder's last layer): heat maps
    ``(N, H, W)`` in ``[0, 1]`` for 2D images ``(N, C, H, W)``; each image is encoded again
    (the cache keeps pooled vectors only). 3D volumes raise ModelError."""
    import torch
    import torch.nn.functional as F

    from medseg.classify.features import image_planes

    arr = clf._as_array(images)
    if arr.ndim != 4:
        raise ModelError(
            "Grad-CAM of a tinyvit model works on 2D images only: a 3D volume is encoded "
            "as separate slices whose maps do not form a volume; use --model cnn3d or "
            "resnet18 for 3D heat maps"
        )
    enc = clf.encoder if clf.encoder is not None else default_encoder()
    maps = []
    for i, img in enumerate(arr):
        emb = torch.from_numpy(np.asarray(enc(image_planes(img)[0]), np.float32))[None]
        emb.requires_grad_(True)
        clf.net.eval()
        with torch.enable_grad():
            logits = clf.net(_torch_pool(emb, clf.config.feature_pool))
            k = int(logits.argmax(1)) if target is None else int(target[i])
            logits[0, k].backward()
        grad = emb.grad
        cam = F.relu((grad.mean((2, 3), keepdim=True) * emb).sum(1, keepdim=True)).detach()
        h, w = img.shape[1:]
        s = cam.shape[-1]
        scale = s / max(h, w)  # the image fills the top-left of the padded square
        crop = cam[..., : max(1, math.ceil(h * scale)), : max(1, math.ceil(w * scale))]
        cam = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        hi = float(cam.max())
        maps.append((cam / hi).numpy() if hi > 0 else np.zeros((h, w), np.float32))
    return np.stack(maps).astype(np.float32)
