"""Cross-validation splits and random patch sampling from preprocessed cases.

Patches are cut from ``(C, *sp)`` arrays in the plan's transposed order, zero-padded where
they leave the image. As in nnU-Net, a fixed share of each batch is centred on a voxel of a
random foreground class present in the case (``oversample_foreground``), the rest anywhere.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.errors import InputError
from medseg.io.atomic import atomic_path
from medseg.training.cache import CachedCase

__all__ = [
    "make_splits",
    "load_or_make_splits",
    "select_fold",
    "spread_subset",
    "crop_padded",
    "PatchSampler",
]


def make_splits(
    case_ids: Sequence[str], n_folds: int = 5, *, seed: int = 0, mode: str = "random"
) -> list[dict[str, list[str]]]:
    """K-fold splits of the sorted case ids.

    ``mode="random"`` shuffles with ``seed`` (nnU-Net's default); ``mode="blocks"`` keeps
    contiguous runs of sorted ids together (for correlated neighbours, e.g. serial sections).
    Uses ``min(n_folds, len(case_ids))`` folds; needs at least two cases.
    """
    ids = sorted(case_ids)
    if len(ids) < 2:
        raise InputError(f"cross-validation needs at least 2 cases, got {len(ids)}")
    if mode not in ("random", "blocks"):
        raise InputError(f"split mode must be 'random' or 'blocks', got {mode!r}")
    k = max(2, min(n_folds, len(ids)))
    order = list(ids)
    if mode == "random":
        order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
        chunks = [order[i::k] for i in range(k)]
    else:
        bounds = np.linspace(0, len(ids), k + 1).round().astype(int)
        chunks = [order[a:b] for a, b in itertools.pairwise(bounds)]
    return [
        {"train": sorted(c for c in ids if c not in set(val)), "val": sorted(val)} for val in chunks
    ]


def load_or_make_splits(
    path: Path, case_ids: Sequence[str], *, seed: int = 0, mode: str = "random"
) -> list[dict[str, list[str]]]:
    """Read ``splits.json`` if present (checking its ids), else create and write it."""
    if path.is_file():
        splits = json.loads(path.read_text())
        known = set(case_ids)
        for i, s in enumerate(splits):
            unknown = sorted((set(s["train"]) | set(s["val"])) - known)
            if unknown:
                raise InputError(f"{path}: fold {i} names cases not in the dataset: {unknown[:5]}")
        return splits
    splits = make_splits(case_ids, seed=seed, mode=mode)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(splits, indent=1) + "\n")
    return splits


def select_fold(
    splits: list[dict[str, list[str]]], fold: int | str, case_ids: Sequence[str]
) -> tuple[list[str], list[str]]:
    """``(train_ids, val_ids)`` of a fold; ``"all"`` trains on everything and validates on
    the training cases (as nnU-Net does: the numbers are then not a held-out estimate)."""
    if fold == "all":
        return sorted(case_ids), sorted(case_ids)
    if not isinstance(fold, int) or not 0 <= fold < len(splits):
        raise InputError(f"fold must be 'all' or 0..{len(splits) - 1}, got {fold!r}")
    return list(splits[fold]["train"]), list(splits[fold]["val"])


def spread_subset(case_ids: Sequence[str], n: int) -> list[str]:
    """At most ``n`` of ``case_ids`` (in order), evenly spread: all when there are <= n.

    >>> spread_subset(["a", "b", "c", "d", "e"], 3)
    ['a', 'c', 'e']
    """
    ids = list(case_ids)
    if n < 1:
        raise InputError(f"the number of cases must be >= 1, got {n}")
    if len(ids) <= n:
        return ids
    picks = np.linspace(0, len(ids) - 1, n).round().astype(int)
    return [ids[i] for i in picks]


def crop_padded(array: np.ndarray, start: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """``array[..., start:start+size]`` over the trailing ``len(size)`` axes, zero-padded
    where the window leaves the array (leading axes, e.g. channels, are kept whole)."""
    lead = array.ndim - len(size)
    spatial = array.shape[lead:]
    src, dst = [], []
    for s, n, dim in zip(start, size, spatial, strict=True):
        a, b = max(s, 0), min(s + n, dim)
        src.append(slice(a, max(a, b)))
        dst.append(slice(a - s, a - s + max(0, b - a)))
    out = np.zeros((*array.shape[:lead], *size), dtype=array.dtype)
    out[(..., *dst)] = array[(..., *src)]
    return out


class PatchSampler:
    """Random training patches from preprocessed cases.

    Args:
        cases: preprocessed cases (``data`` ``(C, *sp)``, ``seg`` ``(*sp)``).
        patch_size: patch in data dims (``(1, py, px)`` for 2D slices of 3D data).
        oversample_foreground: share of each batch centred on a foreground voxel.
        rng: the generator every random choice uses (its state is checkpointed).
    """

    def __init__(
        self,
        cases: Sequence[CachedCase],
        patch_size: Sequence[int],
        oversample_foreground: float,
        rng: np.random.Generator,
    ) -> None:
        if not cases:
            raise InputError("no cases to sample patches from")
        self.cases = list(cases)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.oversample = float(oversample_foreground)
        self.rng = rng
        self.last_cases: list[int] = []  # indices into ``cases`` of the last batch

    def annotated(self, num_classes: int) -> np.ndarray:
        """``(B, K)`` bool: the classes each sample of the last batch annotates (partial
        labels; rows of fully labelled cases are all True)."""
        rows = [self.cases[i].annotated for i in self.last_cases]
        full = np.ones(num_classes, dtype=bool)
        return np.stack([full if r is None else np.asarray(r, dtype=bool) for r in rows])

    @property
    def partial(self) -> bool:
        """True when some case annotates only some classes."""
        return any(c.annotated is not None and not np.all(c.annotated) for c in self.cases)

    def _start(self, case: CachedCase, force_fg: bool) -> list[int]:
        shape = case.seg.shape
        classes = [k for k, loc in case.locations.items() if len(loc)]
        if force_fg and classes:
            k = classes[int(self.rng.integers(len(classes)))]
            locs = case.locations[k]
            centre = locs[int(self.rng.integers(len(locs)))]
        else:
            centre = [int(self.rng.integers(0, s)) for s in shape]
        return [int(c) - p // 2 for c, p in zip(centre, self.patch_size, strict=True)]

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """A batch ``(B, C, *patch)`` float32 and labels ``(B, 1, *patch)`` int64.

        The last ``ceil(B * oversample_foreground)`` samples (at least one when the share
        is positive) are centred on foreground, as nnU-Net's data loader does.
        """
        n_fg = math.ceil(batch_size * self.oversample - 1e-9) if self.oversample > 0 else 0
        images, labels = [], []
        self.last_cases = []
        for i in range(batch_size):
            self.last_cases.append(int(self.rng.integers(len(self.cases))))
            case = self.cases[self.last_cases[-1]]
            start = self._start(case, force_fg=i >= batch_size - n_fg)
            images.append(crop_padded(case.data, start, self.patch_size))
            labels.append(crop_padded(case.seg, start, self.patch_size))
        img = np.stack(images).astype(np.float32, copy=False)
        lab = np.stack(labels).astype(np.int64)[:, None]
        return img, lab
