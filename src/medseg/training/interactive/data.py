"""Training targets for ``medseg-interactive``: every class and connected component of 2D
images and of 3D volumes sliced in all three orientations, read with :mod:`medseg.io`.

A dataset folder holds ``images/`` and ``labels/`` (the shared-data layout: 2D
``images/<id>.png`` + ``labels/<id>.png``, 3D ``images/<id>_<CCCC>.nii.gz`` +
``labels/<id>.nii.gz``; each 3D channel is a separate image source sharing the label). A
folder without ``images/`` whose sub-folders are datasets is read as all of them.

Images are kept as uint8 after normalisation (2D uint8 as is; others through
:func:`medseg.io.intensity.display_window` with the modality guessed as the Predictor does,
so CT volumes get the soft-tissue window). Labels are semantic (one target per class, or
per connected component of a class) or instance maps (one target per instance), from the
``task`` of a ``manifest.json`` beside the datasets, else uint16/uint32 label files are
instance maps.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medseg.errors import InputError
from medseg.io.naming import split_channel, split_ending

__all__ = ["Source", "load_sources", "find_datasets", "sample_target", "slice_presence"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Source:
    """One image with its label map.

    Attributes:
        name: ``dataset/case`` (``/cCCCC`` for a channel of a multi-channel volume).
        image: 2D ``(H, W, 3)`` uint8 or 3D ``(Z, Y, X)`` uint8 (normalised intensities).
        labels: ``(H, W)`` or ``(Z, Y, X)`` int32 label map.
        instance: True for instance maps (each value one object).
        values: the non-zero label values present.
        spacing: pixel size per array axis (for isotropic resampling of 3D slices).
        presence: 3D only: per axis, label value -> slice indices where it is present.
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    instance: bool
    values: tuple[int, ...]
    spacing: tuple[float, ...]
    presence: tuple[dict[int, np.ndarray], ...] = field(default=())

    @property
    def ndim(self) -> int:
        return self.labels.ndim


def _stem(path: Path) -> str:
    return split_ending(path.name)[0] if split_ending(path.name) else path.stem


def find_datasets(paths: Sequence[str | Path]) -> list[Path]:
    """Dataset folders (with ``images/`` and ``labels/``) in ``paths`` or one level below."""
    found: list[Path] = []
    for p in map(Path, paths):
        if (p / "images").is_dir() and (p / "labels").is_dir():
            found.append(p)
            continue
        subs = sorted(d for d in p.glob("*") if (d / "images").is_dir() and (d / "labels").is_dir())
        if not subs:
            raise InputError(f"{p} is not a dataset folder (images/ + labels/) nor holds any")
        found.extend(subs)
    return found


def _is_instance(dataset: Path) -> bool | None:
    for manifest in (dataset.parent / "manifest.json", dataset / "manifest.json"):
        if manifest.is_file():
            for ds in json.loads(manifest.read_text()).get("datasets", []):
                if ds.get("name") == dataset.name:
                    return ds.get("task") == "instance"
    return None


def _to_uint8(image: object) -> np.ndarray:
    from medseg.inference.predictor import guess_modality
    from medseg.io.intensity import display_window

    arr = np.asarray(image.array)  # type: ignore[attr-defined]
    if image.channels:  # type: ignore[attr-defined]
        arr = arr[..., 0] if arr.shape[-1] < 3 else arr[..., :3]
    if arr.dtype == np.uint8:
        return arr
    unit = display_window(arr, modality=guess_modality(image, arr))  # type: ignore[arg-type]
    return np.round(np.clip(unit, 0, 1) * 255).astype(np.uint8)


def slice_presence(labels: np.ndarray) -> tuple[dict[int, np.ndarray], ...]:
    """For each axis of a ``(Z, Y, X)`` label volume: value -> sorted slice indices."""
    out = []
    for axis in range(3):
        lists: dict[int, list[int]] = {}
        moved = np.moveaxis(labels, axis, 0)
        for i in range(moved.shape[0]):
            for v in np.unique(moved[i]):
                if v:
                    lists.setdefault(int(v), []).append(i)
        out.append({v: np.array(ix, np.int64) for v, ix in lists.items()})
    return tuple(out)


def _dataset_sources(folder: Path, keep: Callable[[str, str], bool]) -> list[Source]:
    from medseg.io import load, load_label

    instance_flag = _is_instance(folder)
    groups: dict[str, list[Path]] = {}
    for img in sorted((folder / "images").iterdir()):
        stem = _stem(img)
        m = split_channel(stem)
        groups.setdefault(m[0] if m else stem, []).append(img)
    sources: list[Source] = []
    for case, images in groups.items():
        if not keep(folder.name, case):
            continue
        label_files = [p for p in (folder / "labels").glob(f"{case}.*") if _stem(p) == case]
        if not label_files:
            log.warning("no label for %s/%s: skipped", folder.name, case)
            continue
        lab = load_label(label_files[0])
        labels = np.asarray(lab.array).astype(np.int32)
        values = tuple(int(v) for v in np.unique(labels) if v)
        if not values:
            continue
        instance = instance_flag if instance_flag is not None else lab.array.dtype.itemsize > 1
        presence = slice_presence(labels) if labels.ndim == 3 else ()
        for img_path in images:
            image = load(img_path)
            arr = _to_uint8(image)
            if labels.ndim == 2 and arr.ndim == 2:
                arr = np.repeat(arr[..., None], 3, axis=-1)
            if arr.shape[: labels.ndim] != labels.shape:
                log.warning("%s: image %s vs label %s: skipped", img_path, arr.shape, labels.shape)
                continue
            name = f"{folder.name}/{case}" + (f"/{_stem(img_path)[-4:]}" if len(images) > 1 else "")
            spacing = tuple(float(s) for s in image.spacing)
            sources.append(Source(name, arr, labels, instance, values, spacing, presence))
    return sources


def load_sources(
    paths: Sequence[str | Path], keep: Callable[[str, str], bool] = lambda d, c: True
) -> list[Source]:
    """Every labelled image of the datasets in ``paths`` for which ``keep(dataset, case)``."""
    sources: list[Source] = []
    for folder in find_datasets(paths):
        found = _dataset_sources(folder, keep)
        log.info("%s: %d image sources", folder.name, len(found))
        sources.extend(found)
    if not sources:
        raise InputError(f"no labelled images found in {list(map(str, paths))}")
    return sources


def _component(mask: np.ndarray, rng: np.random.Generator, min_pixels: int) -> np.ndarray:
    """A random connected component (8-connected) of at least ``min_pixels``, else ``mask``."""
    from scipy import ndimage

    lab, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n <= 1:
        return mask
    sizes = np.bincount(lab.ravel())[1:]
    ok = np.flatnonzero(sizes >= min_pixels)
    if ok.size == 0:
        return mask
    return lab == int(ok[rng.integers(ok.size)]) + 1


def _slice(src: Source, rng: np.random.Generator, value: int) -> tuple[np.ndarray, np.ndarray]:
    """A slice through ``value`` of a 3D source in a random orientation, made isotropic."""
    from scipy import ndimage

    axes = [a for a in range(3) if value in src.presence[a]]
    axis = int(axes[rng.integers(len(axes))])
    idx = src.presence[axis][value]
    i = int(idx[rng.integers(idx.size)])
    img = np.take(src.image, i, axis=axis)
    lab = np.take(src.labels, i, axis=axis) == value
    sp = [s for a, s in enumerate(src.spacing[:3]) if a != axis]
    if len(sp) == 2 and min(sp) > 0 and max(sp) / min(sp) > 1.2:
        zoom = (sp[0] / min(sp), sp[1] / min(sp))
        img = ndimage.zoom(img, zoom, order=1)
        lab = ndimage.zoom(lab.astype(np.uint8), zoom, order=0).astype(bool)
    return np.repeat(img[..., None], 3, axis=-1), lab


def sample_target(
    src: Source, rng: np.random.Generator, p_component: float = 0.5, min_pixels: int = 9
) -> tuple[np.ndarray, np.ndarray]:
    """A random target of ``src``: ``(image (H, W, 3) uint8, mask (H, W) bool)``.

    A random label value (an instance, or a class: the whole class or with probability
    ``p_component`` one of its connected components of at least ``min_pixels`` pixels); 3D
    sources give a random slice through it in a random orientation.
    """
    value = int(src.values[rng.integers(len(src.values))])
    if src.ndim == 3:
        image, mask = _slice(src, rng, value)
    else:
        image, mask = src.image, src.labels == value
    if not src.instance and rng.random() < p_component:
        mask = _component(mask, rng, min_pixels)
    return image, mask
