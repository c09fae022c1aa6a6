"""Classification datasets: MedMNIST ``.npz``, folders of class sub-folders, ``path,label`` CSVs.

Every reader returns a :class:`Dataset`: per split (``train``/``val``/``test``) an image array
``(N, C, H, W)`` (2D) or ``(N, C, Z, Y, X)`` (3D), float32 in ``[0, 1]``, and labels ``(N,)``
int64 (binary, multi-class, ordinal) or ``(N, K)`` 0/1 (multi-label).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medseg.errors import InputError

__all__ = [
    "TASKS",
    "SPLITS",
    "Dataset",
    "read_dataset",
    "read_npz",
    "read_folder",
    "read_csv",
    "load_images",
    "to_unit_range",
    "infer_task",
    "check_split",
    "is_image_file",
]

log = logging.getLogger(__name__)

TASKS = ("binary", "multi-class", "ordinal", "multi-label")
SPLITS = ("train", "val", "test")
# MedMNIST flags whose task is not told by the labels alone.
_MEDMNIST_TASKS = {"retinamnist": "ordinal", "chestmnist": "multi-label"}
_IMAGE_SUFFIXES = (
    ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".nii", ".nii.gz", ".nrrd", ".mha",
    ".mhd", ".dcm", ".npy",
)  # fmt: skip


@dataclass
class Dataset:
    """Images and labels per split.

    Attributes:
        images: split name -> float32 ``(N, C, H, W)`` or ``(N, C, Z, Y, X)`` in ``[0, 1]``.
        labels: split name -> int64 ``(N,)``, or 0/1 ``(N, K)`` for multi-label.
        task: one of :data:`TASKS`.
        classes: class names, in label order.
        source: where the data came from.
        paths: split name -> file of each sample (folders and CSVs only).
    """

    images: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    task: str
    classes: list[str]
    source: str = ""
    paths: dict[str, list[str]] = field(default_factory=dict)

    @property
    def spatial_dims(self) -> int:
        """2 or 3."""
        return next(iter(self.images.values())).ndim - 2

    @property
    def in_channels(self) -> int:
        """Channels C of every image."""
        return int(next(iter(self.images.values())).shape[1])

    @property
    def image_size(self) -> int:
        """Edge length of the (square or cubic) images."""
        return int(next(iter(self.images.values())).shape[-1])


def infer_task(labels: np.ndarray, name: str = "") -> str:
    """Task told by labels ``(N,)``/``(N, 1)`` (binary or multi-class) or ``(N, K)`` 0/1."""
    stem = Path(name).name.split(".")[0].lower()
    for flag, task in _MEDMNIST_TASKS.items():
        if stem.startswith(flag):
            return task
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:
        return "multi-label"
    return "binary" if len(np.unique(labels)) <= 2 else "multi-class"


def check_split(labels: np.ndarray, split: str, task: str, source: str = "") -> None:
    """Raise InputError when a split is empty or holds one class only."""
    where = f"{source}: " if source else ""
    if len(labels) == 0:
        raise InputError(f"{where}split {split!r} is empty")
    if task == "multi-label":
        return
    found = np.unique(labels)
    if len(found) < 2:
        raise InputError(
            f"{where}split {split!r} holds one class only ({int(found[0])}); "
            "a classifier needs at least two"
        )


def to_unit_range(image: np.ndarray) -> np.ndarray:
    """One image (any shape) as float32 in ``[0, 1]``; the one rule of every reader.

    - ``uint8`` (MedMNIST arrays, 8-bit PNG/JPEG/TIFF): divided by 255, so an image gives the
      same values from a ``.npz`` array and from a PNG file;
    - ``bool``: 0 and 1;
    - floats already within ``[0, 1]``: unchanged;
    - anything else (16-bit images, CT in HU, floats outside ``[0, 1]``): min-max scaled
      over the image (a constant image becomes zeros).
    """
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0)
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    out = arr.astype(np.float32)
    if out.size == 0:
        return out
    if not np.isfinite(out).all():
        raise InputError("image contains NaN or infinite values")
    lo, hi = float(out.min()), float(out.max())
    if np.issubdtype(arr.dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
        return out
    return (out - lo) / np.float32(hi - lo) if hi > lo else np.zeros_like(out)


def _to_nchw(images: np.ndarray, dims: int | None, source: str) -> np.ndarray:
    """MedMNIST arrays ``(N, H, W)``, ``(N, H, W, 3)`` or ``(N, Z, Y, X)`` -> channels first."""
    arr = np.asarray(images)
    if dims is None:
        dims = 2 if arr.ndim == 3 or (arr.ndim == 4 and arr.shape[-1] in (3, 4)) else 3
    if arr.ndim == dims + 1:
        arr = arr[:, None]
    elif arr.ndim == dims + 2:
        arr = np.moveaxis(arr, -1, 1)
    else:
        raise InputError(f"{source}: images of shape {arr.shape} are not {dims}D samples")
    if arr.dtype == np.uint8:  # whole array at once: the same as per image, faster
        return np.ascontiguousarray(to_unit_range(arr))
    return np.ascontiguousarray(np.stack([to_unit_range(a) for a in arr]), dtype=np.float32)


def _labels(raw: np.ndarray, task: str) -> np.ndarray:
    raw = np.asarray(raw)
    if task == "multi-label":
        return raw.reshape(len(raw), -1).astype(np.int64)
    return raw.reshape(len(raw), -1)[:, 0].astype(np.int64)


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; choose from {TASKS}")


def read_npz(path: str | Path, task: str | None = None, dims: int | None = None) -> Dataset:
    """A MedMNIST ``.npz`` with ``{train,val,test}_{images,labels}`` (any size, 2D or 3D).

    Args:
        path: the file.
        task: override the task told by the labels (and the MedMNIST file name).
        dims: 2 or 3 when the array shapes are ambiguous (default: guessed).
    """
    path = Path(path)
    try:
        data = np.load(path)
        keys = set(data.files)
    except Exception as exc:  # numpy raises OSError, ValueError, BadZipFile
        raise InputError(f"cannot read {path}: {exc}") from exc
    missing = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels") if f"{s}_{k}" not in keys]
    if missing:
        raise InputError(f"{path} is not a MedMNIST file: missing arrays {missing}")
    task = task or infer_task(data["train_labels"], path.name)
    _check_task(task)
    images = {s: _to_nchw(data[f"{s}_images"], dims, f"{path}:{s}") for s in SPLITS}
    if len({im.ndim for im in images.values()}) > 1:
        raise InputError(f"{path}: splits mix 2D and 3D images")
    if len({im.shape[1:] for im in images.values()}) > 1:
        raise InputError(f"{path}: splits have different image shapes")
    labels = {s: _labels(data[f"{s}_labels"], task) for s in SPLITS}
    for s in SPLITS:
        if len(labels[s]) != len(images[s]):
            raise InputError(f"{path}: split {s!r} has {len(images[s])} images but "
                             f"{len(labels[s])} labels")  # fmt: skip
        check_split(labels[s], s, task, str(path))
    if task == "multi-label":
        n = labels["train"].shape[1]
    else:
        n = int(max(lab.max() for lab in labels.values())) + 1
    return Dataset(images, labels, task, [str(i) for i in range(n)], str(path))


def _resize(arr: np.ndarray, size: int) -> np.ndarray:
    """Channels-first ``(C, *spatial)`` -> ``(C, size, ...)`` by (anti-aliased) interpolation."""
    import torch
    import torch.nn.functional as F

    if all(s == size for s in arr.shape[1:]):
        return arr
    t = torch.from_numpy(np.ascontiguousarray(arr))[None]
    mode = "bilinear" if arr.ndim == 3 else "trilinear"
    out = F.interpolate(
        t, size=(size,) * (arr.ndim - 1), mode=mode, align_corners=False, antialias=arr.ndim == 3
    )
    return out[0].numpy()


def load_images(paths: list[str], size: int = 64, channels: int | None = None) -> np.ndarray:
    """Read files with ``medseg.io.load`` -> float32 ``(N, C, size, size[, size])`` in ``[0, 1]``.

    Intensities follow :func:`to_unit_range` (8-bit: /255 as MedMNIST arrays; other types:
    min-max), then each image is resized; gray images are repeated to ``channels``.
    Raises InputError naming the file when one cannot be read or the dimensionality mixes.
    """
    from medseg.io import load

    out, dims = [], None
    for p in paths:
        try:
            img = load(p)
        except Exception as exc:  # readers raise InputError, OSError, RuntimeError (ITK)
            raise InputError(f"cannot read image {p}: {exc}") from exc
        try:
            arr = to_unit_range(img.array)
        except InputError as exc:
            raise InputError(f"{p}: {exc}") from exc
        arr = np.moveaxis(arr, -1, 0) if img.channels else arr[None]
        ndim = arr.ndim - 1
        if dims is None:
            dims = ndim
        elif ndim != dims:
            raise InputError(f"{p} is {ndim}D but earlier images are {dims}D; mixed dimensionality")
        out.append(_resize(arr, size))
    if not out:
        raise InputError("no images given")
    want = channels or max(a.shape[0] for a in out)
    fixed = []
    for p, a in zip(paths, out, strict=True):
        if a.shape[0] == want:
            fixed.append(a)
        elif a.shape[0] == 1:
            fixed.append(np.repeat(a, want, 0))
        elif want == 1:
            fixed.append(a[:3].mean(0, keepdims=True))
        else:
            raise InputError(f"{p} has {a.shape[0]} channels, expected {want}")
    return np.stack(fixed).astype(np.float32)


def _split_indices(labels: list[int], seed: int = 0) -> dict[str, np.ndarray]:
    """Stratified 70/10/20 split: every class with >= 3 samples lands in every split."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {s: [] for s in SPLITS}
    labels_arr = np.asarray(labels)
    for c in np.unique(labels_arr):
        idx = rng.permutation(np.flatnonzero(labels_arr == c))
        n = len(idx)
        n_test = max(1, round(0.2 * n)) if n >= 3 else 0
        n_val = max(1, round(0.1 * n)) if n >= 3 else 0
        parts["test"] += idx[:n_test].tolist()
        parts["val"] += idx[n_test : n_test + n_val].tolist()
        parts["train"] += idx[n_test + n_val :].tolist()
    return {s: np.sort(np.asarray(v, dtype=np.int64)) for s, v in parts.items()}


def _from_rows(
    rows: list[tuple[str, str, str | None]],
    source: str,
    size: int,
    classes: list[str] | None,
    task: str | None,
) -> Dataset:
    """Rows ``(path, label, split or None)`` -> Dataset (stratified 70/10/20 when no split)."""
    if not rows:
        raise InputError(f"{source}: no images found")
    names = list(classes) if classes else sorted({r[1] for r in rows})
    for path, label, _ in rows:
        if label not in names:
            raise InputError(f"{path}: label {label!r} is not in the class list {names}")
    if any(r[2] is None for r in rows):
        idx = _split_indices([names.index(r[1]) for r in rows])
    else:
        for s in sorted({r[2] for r in rows} - set(SPLITS)):  # type: ignore[type-var]
            raise InputError(f"{source}: unknown split {s!r}; use {SPLITS}")
        idx = {s: np.array([i for i, r in enumerate(rows) if r[2] == s], int) for s in SPLITS}
    task = task or ("binary" if len(names) == 2 else "multi-class")
    _check_task(task)
    images, labels, paths = {}, {}, {}
    for s in SPLITS:
        sel = [rows[i] for i in idx[s]]
        labels[s] = np.array([names.index(r[1]) for r in sel], dtype=np.int64)
        check_split(labels[s], s, task, source)
        paths[s] = [r[0] for r in sel]
    first = load_images(paths["train"][:1], size)
    for s in SPLITS:
        images[s] = load_images(paths[s], size, channels=first.shape[1])
        if images[s].ndim != first.ndim:
            raise InputError(f"{source}: split {s!r} mixes 2D and 3D images")
    return Dataset(images, labels, task, names, source, paths)


def is_image_file(p: Path) -> bool:
    """Whether ``p`` is a file with an image ending medseg reads (PNG, NIfTI, DICOM, ...)."""
    name = p.name.lower()
    return p.is_file() and any(name.endswith(s) for s in _IMAGE_SUFFIXES)


def _class_rows(folder: Path, split: str | None) -> list[tuple[str, str, str | None]]:
    return [
        (str(f), c.name, split)
        for c in sorted(folder.iterdir())
        if c.is_dir()
        for f in sorted(c.iterdir())
        if is_image_file(f)
    ]


def read_folder(
    root: str | Path, size: int = 64, classes: list[str] | None = None, task: str | None = None
) -> Dataset:
    """``ROOT/<class>/*`` (stratified 70/10/20 split) or ``ROOT/{train,val,test}/<class>/*``.

    Images are resized to ``size`` pixels per axis (2D) or voxels per axis (3D).
    """
    root = Path(root)
    split_dirs = [root / s for s in SPLITS]
    rows: list[tuple[str, str, str | None]] = []
    if all(d.is_dir() for d in split_dirs):
        for s, d in zip(SPLITS, split_dirs, strict=True):
            rows += _class_rows(d, s)
    else:
        rows = _class_rows(root, None)
    return _from_rows(rows, str(root), size, classes, task)


def read_csv(
    path: str | Path, size: int = 64, classes: list[str] | None = None, task: str | None = None
) -> Dataset:
    """A CSV with columns ``path,label[,split]`` (relative paths are read from the CSV's folder)."""
    path = Path(path)
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames or []
            if not {"path", "label"} <= set(fields):
                raise InputError(f"{path}: needs a header with columns 'path' and 'label'")
            rows = []
            for row in reader:
                p = Path(row["path"])
                p = p if p.is_absolute() else path.parent / p
                split = (row.get("split") or "").strip() or None
                rows.append((str(p), (row["label"] or "").strip(), split))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    return _from_rows(rows, str(path), size, classes, task)


def read_dataset(
    source: str | Path,
    task: str | None = None,
    size: int = 64,
    classes: list[str] | None = None,
) -> Dataset:
    """Dispatch on the source: ``.npz`` (MedMNIST), ``.csv``, or a folder.

    Args:
        source: the data.
        task: override the task (one of :data:`TASKS`).
        size: edge length images of folders/CSVs are resized to (``.npz`` keep theirs).
        classes: class names in label order (folders/CSVs; default: sorted labels found).
    """
    source = Path(source)
    if not source.exists():
        raise InputError(f"data not found: {source}")
    if source.is_dir():
        return read_folder(source, size, classes, task)
    if source.suffix.lower() == ".csv":
        return read_csv(source, size, classes, task)
    if source.suffix.lower() == ".npz":
        return read_npz(source, task)
    raise InputError(f"{source}: expected a MedMNIST .npz, a .csv or a folder")
