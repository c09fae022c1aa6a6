"""The embedding cache the click fine-tuning reads, and its training targets.

A cache folder (written by ``benchmarks/foundation_clicks_cache.py``, which reuses
``benchmarks/text_data.py``) holds:

- ``embeddings.npy``: ``(C, 256, 64, 64)`` float16 LiteMedSAM image embeddings (a memmap;
  only the first ``count`` rows are filled);
- ``labels.npy``: ``(count, 256, 256)`` uint8 label maps in LiteMedSAM's model frame (the
  image resized so its longest side is 256, zero-padded at the bottom/right);
- ``samples.jsonl``: one JSON line per sample with at least ``dataset``, ``task``
  (``"semantic"`` / ``"instance"``) and ``resized`` ``[h, w]`` (the image inside the frame);
- ``count.txt``: the number of samples.

A target is one class of a semantic label map, or one connected component of an instance
map (the cache stores instance maps merged into one class).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medseg.errors import InputError

__all__ = ["Target", "ClickCache", "write_cache"]

log = logging.getLogger(__name__)

FRAME = 256


@dataclass(frozen=True)
class Target:
    """One training target: ``labels[index] == value`` (semantic) or component ``component``
    of the instance map of sample ``index`` (``component >= 1``; 0 = whole class)."""

    index: int
    value: int
    component: int = 0


class ClickCache:
    """Embeddings, labels and targets of one cache folder (see the module docstring).

    Args:
        folder: the cache folder.
        datasets: keep only samples of these datasets (default: all).
        min_area: skip targets with fewer model-frame pixels than this.
    """

    def __init__(
        self, folder: str | Path, datasets: Collection[str] | None = None, min_area: int = 16
    ) -> None:
        from scipy import ndimage

        folder = Path(folder)
        try:
            count = int((folder / "count.txt").read_text())
            self.meta = [json.loads(x) for x in (folder / "samples.jsonl").read_text().splitlines()]
            self.embeddings = np.load(folder / "embeddings.npy", mmap_mode="r")
            self.labels = np.load(folder / "labels.npy")
        except (OSError, ValueError) as exc:
            raise InputError(f"{folder} is not a click embedding cache: {exc}") from exc
        if len(self.meta) != count or self.labels.shape != (count, FRAME, FRAME):
            raise InputError(
                f"{folder}: count {count}, {len(self.meta)} samples, labels {self.labels.shape}"
            )
        self.components: dict[int, np.ndarray] = {}
        self.targets: list[Target] = []
        for i, m in enumerate(self.meta):
            if datasets is not None and m["dataset"] not in datasets:
                continue
            lab = self.labels[i]
            if m.get("task") == "instance":
                comp, _ = ndimage.label(lab > 0, structure=np.ones((3, 3), bool))
                self.components[i] = comp.astype(np.int32)
                sizes = np.bincount(comp.ravel())
                self.targets += [
                    Target(i, 1, k) for k in range(1, sizes.size) if sizes[k] >= min_area
                ]
                continue
            values, sizes = np.unique(lab, return_counts=True)
            self.targets += [
                Target(i, int(v), 0)
                for v, s in zip(values, sizes, strict=True)
                if v and s >= min_area
            ]
        if not self.targets:
            raise InputError(f"{folder}: no target with >= {min_area} pixels")
        by_ds: dict[str, list[int]] = {}
        for k, t in enumerate(self.targets):
            by_ds.setdefault(self.meta[t.index]["dataset"], []).append(k)
        self.by_dataset = {d: np.asarray(v) for d, v in sorted(by_ds.items())}
        log.info("%d targets of %d datasets", len(self.targets), len(self.by_dataset))

    def mask(self, target: Target) -> np.ndarray:
        """``(256, 256)`` bool mask of ``target`` in the model frame."""
        if target.component:
            return self.components[target.index] == target.component
        return self.labels[target.index] == target.value

    def resized(self, target: Target) -> tuple[int, int]:
        """``(h, w)`` of the target's image inside the model frame."""
        h, w = self.meta[target.index]["resized"]
        return int(h), int(w)

    def sample(self, rng: np.random.Generator, n: int) -> list[Target]:
        """``n`` targets: a dataset uniformly at random, then one of its targets."""
        names = list(self.by_dataset)
        out = []
        for d in rng.integers(len(names), size=n):
            pool = self.by_dataset[names[int(d)]]
            out.append(self.targets[int(pool[rng.integers(pool.size)])])
        return out

    def batch(self, targets: list[Target]) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
        """``(embeddings (B, 256, 64, 64) float32, masks (B, 256, 256) bool, resized sizes)``."""
        emb = np.stack([np.asarray(self.embeddings[t.index], np.float32) for t in targets])
        masks = np.stack([self.mask(t) for t in targets])
        return emb, masks, [self.resized(t) for t in targets]


def write_cache(
    folder: str | Path, embeddings: np.ndarray, labels: np.ndarray, meta: list[dict]
) -> Path:
    """Write a cache folder from arrays (``(N, 256, 64, 64)``, ``(N, 256, 256)`` uint8, ``N``
    metadata dicts with ``dataset``, ``task``, ``resized``); for tests and small experiments."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = len(meta)
    if embeddings.shape[0] != n or labels.shape != (n, FRAME, FRAME):
        raise InputError(f"{n} samples but embeddings {embeddings.shape}, labels {labels.shape}")
    np.save(folder / "embeddings.npy", np.asarray(embeddings, np.float16))
    np.save(folder / "labels.npy", np.asarray(labels, np.uint8))
    (folder / "samples.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    (folder / "count.txt").write_text(str(n))
    return folder
