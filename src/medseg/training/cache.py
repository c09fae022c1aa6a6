"""The training cache of preprocessed cases: ``.npy`` arrays per case on the plan's grid,
tied to a hash of the plan fields that change them.

Arrays are channel-first ``(C, *spatial)`` float32 images and ``(*spatial)`` class-index
labels, in the plan's transposed axis order (see :mod:`medseg.automatic.preprocess`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg.automatic.plan import Plan
from medseg.automatic.preprocess import preprocess_image, preprocess_label
from medseg.errors import InputError
from medseg.io.atomic import atomic_path

__all__ = [
    "CachedCase",
    "class_locations",
    "plan_cache_key",
    "dataset_cache_key",
    "LABELS_HASH_FILE",
    "preprocess_dataset",
    "load_preprocessed",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedCase:
    """A preprocessed case: ``data`` ``(C, *sp)``, ``seg`` ``(*sp)``, sampled class voxels.

    ``annotated``: ``(K,)`` bool, the classes the case's label annotates (partial labels,
    see :func:`medseg.data.nnunet.annotated_classes`); None = every class.
    """

    case_id: str
    data: np.ndarray
    seg: np.ndarray
    locations: dict[int, np.ndarray]
    annotated: np.ndarray | None = None


def class_locations(
    seg: np.ndarray, num_classes: int, rng: np.random.Generator, max_per_class: int = 10000
) -> dict[int, np.ndarray]:
    """Up to ``max_per_class`` random voxel coordinates ``(N, ndim)`` of each class >= 1."""
    flat = seg.ravel()
    out = {}
    for k in range(1, num_classes):
        idx = np.flatnonzero(flat == k)
        if idx.size > max_per_class:
            idx = rng.choice(idx, size=max_per_class, replace=False)
        out[k] = np.stack(np.unravel_index(np.sort(idx), seg.shape), axis=1).astype(np.int32)
    return out


def plan_cache_key(plan: Plan) -> str:
    """Hash of the plan fields that change preprocessed arrays."""
    fields = {
        "transpose": plan.transpose,
        "target_spacing": plan.target_spacing,
        "normalization": [asdict(n) for n in plan.normalization],
        "nonzero": plan.use_nonzero_mask,
        "labels": plan.label_values,
        "version": 1,
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


#: A dataset folder holding this file (the fused rater dataset ``MODEL/fused_data`` of
#: :mod:`medseg.training.raters`) ties the cache to the hash of its labels it holds.
LABELS_HASH_FILE = "labels_hash.txt"


def dataset_cache_key(plan: Plan, root: str | Path) -> str:
    """:func:`plan_cache_key`, plus the labels hash of dataset ``root`` when it has a
    :data:`LABELS_HASH_FILE` (so new fused labels rebuild the cache)."""
    key = plan_cache_key(plan)
    labels = Path(root) / LABELS_HASH_FILE
    return f"{key} labels {labels.read_text().strip()}" if labels.is_file() else key


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def preprocess_dataset(dataset: Any, plan: Plan, cache_dir: str | Path, *, seed: int = 0) -> Path:
    """Preprocess every training case of ``dataset`` into ``cache_dir`` (skips cached ones).

    The cache is tied to :func:`dataset_cache_key` (the plan, and the labels hash of a fused
    rater dataset); a different key clears it first.
    """
    from tqdm import tqdm

    from medseg.data.nnunet import load_case

    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    key_file, key = cache / "plan_key.txt", dataset_cache_key(plan, dataset.root)
    if key_file.is_file() and key_file.read_text().strip() != key:
        log.info("plan or labels changed: clearing preprocessed cache %s", cache)
        for f in cache.glob("*"):
            f.unlink()
    with atomic_path(key_file) as tmp:
        tmp.write_text(key + "\n")
    rng = np.random.default_rng(seed)
    todo = [c for c in dataset.training if not (cache / f"{c.case_id}.json").is_file()]
    for case in tqdm(todo, desc="preprocess", unit="case", disable=not todo):
        image, label = load_case(dataset, case)
        data, geom = preprocess_image(image, plan)
        seg = preprocess_label(label, geom, plan, case_id=case.case_id)
        _save_npy(cache / f"{case.case_id}.npy", data)
        _save_npy(cache / f"{case.case_id}_seg.npy", seg)
        locs = class_locations(seg, plan.num_classes, rng)
        with atomic_path(cache / f"{case.case_id}_locs.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **{str(k): v for k, v in locs.items()})
        with atomic_path(cache / f"{case.case_id}.json") as tmp:  # written last: "done" marker
            tmp.write_text(json.dumps(asdict(geom)) + "\n")
    return cache


def load_preprocessed(
    cache_dir: str | Path,
    case_id: str,
    *,
    mmap: bool = True,
    annotated: np.ndarray | list[bool] | None = None,
) -> CachedCase:
    """Open a cached case (memory-mapped by default); ``annotated`` as in :class:`CachedCase`."""
    cache = Path(cache_dir)
    if not (cache / f"{case_id}.json").is_file():
        raise InputError(f"{cache}: case {case_id!r} is not preprocessed")
    mode = "r" if mmap else None
    data = np.load(cache / f"{case_id}.npy", mmap_mode=mode)
    seg = np.load(cache / f"{case_id}_seg.npy", mmap_mode=mode)
    with np.load(cache / f"{case_id}_locs.npz") as z:
        locs = {int(k): z[k] for k in z.files}
    mask = None if annotated is None else np.asarray(annotated, dtype=bool)
    return CachedCase(case_id, data, seg, locs, mask)
