"""Preprocessing of a plan: crop to non-zero, normalise, transpose, resample (training and
prediction run the same code; the training cache is :mod:`medseg.training.cache`).

Arrays here are channel-first: an image becomes ``(C, *spatial)`` float32 with the spatial
axes in the plan's transposed order, a label becomes ``(*spatial)`` of class indices
``0..K-1`` (index ``i`` stands for ``plan.label_values[i]``).

Resampling resizes arrays with ``torch.nn.functional.interpolate`` (linear, pixel-area
aligned, ``align_corners=False``): the grid is scaled to the plan's spacing and the exact
inverse (resizing back to the original shape) restores the original grid. Labels are
resampled as nnU-Net does, one class at a time through linear interpolation of its one-hot
mask, keeping the class with the highest value (smooth borders, no nearest-neighbour
staircase).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medseg.automatic.plan import Normalization, Plan
from medseg.errors import InputError
from medseg.io.image import Image, LabelMap

__all__ = [
    "nonzero_bbox",
    "CaseGeometry",
    "normalize",
    "resize",
    "resize_argmax",
    "preprocess_image",
    "preprocess_label",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseGeometry:
    """What preprocessing did to one image, to undo it after prediction.

    ``shape`` and ``bbox`` (``(start, stop)`` per axis) are in the original array order;
    ``resampled_shape`` is in the plan's transposed order.
    """

    shape: tuple[int, ...]
    bbox: tuple[tuple[int, int], ...]
    resampled_shape: tuple[int, ...]

    @property
    def cropped_shape(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in self.bbox)


def nonzero_bbox(array: np.ndarray) -> tuple[slice, ...]:
    """Bounding box of voxels where any channel is non-zero.

    Args:
        array: channel-last image ``(*spatial, C)``.

    Returns:
        One slice per spatial axis; the whole extent when the image is all zero.
    """
    mask = np.any(array != 0, axis=-1)
    if not mask.any():
        return tuple(slice(0, s) for s in mask.shape)
    out = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        out.append(slice(int(idx[0]), int(idx[-1]) + 1))
    return tuple(out)


def normalize(
    data: np.ndarray, norms: Sequence[Normalization], mask: np.ndarray | None
) -> np.ndarray:
    """Normalise each channel of ``data`` ``(C, *sp)``; returns float32 of the same shape.

    With ``mask`` (z-score inside the non-zero region), statistics come from the mask and
    voxels outside it are set to 0.
    """
    if len(norms) != data.shape[0]:
        raise InputError(f"the plan has {len(norms)} channels, the image {data.shape[0]}")
    out = np.empty(data.shape, dtype=np.float32)
    for c, norm in enumerate(norms):
        x = data[c].astype(np.float32)
        if norm.scheme == "ct":
            x = (np.clip(x, norm.lower, norm.upper) - norm.mean) / max(norm.std, 1e-8)
        elif norm.scheme == "zscore":
            sel = x[mask] if mask is not None and mask.any() else x
            x = (x - sel.mean()) / max(float(sel.std()), 1e-8)
            if mask is not None:
                x[~mask] = 0
        elif norm.scheme == "rgb_to_0_1":
            x = x / 255.0
        elif norm.scheme != "none":
            raise InputError(f"unknown normalisation scheme {norm.scheme!r}")
        out[c] = x
    return out


def resize(array: np.ndarray, new_shape: Sequence[int], *, dtype: Any = np.float32) -> np.ndarray:
    """Linear resize of ``(C, *sp)`` to ``(C, *new_shape)``, one channel at a time."""
    import torch
    import torch.nn.functional as F

    new_shape = tuple(int(s) for s in new_shape)
    if tuple(array.shape[1:]) == new_shape:
        return np.asarray(array, dtype=dtype)
    mode = "bilinear" if len(new_shape) == 2 else "trilinear"
    out = np.empty((array.shape[0], *new_shape), dtype=dtype)
    for c in range(array.shape[0]):
        t = torch.from_numpy(np.ascontiguousarray(array[c], dtype=np.float32))[None, None]
        out[c] = F.interpolate(t, size=new_shape, mode=mode, align_corners=False)[0, 0].numpy()
    return out


def resize_argmax(
    channel: Callable[[int], np.ndarray], num_classes: int, new_shape: Sequence[int]
) -> np.ndarray:
    """Argmax over classes of per-class maps resized to ``new_shape``, class by class.

    ``channel(k)`` returns the ``(*sp)`` map of class ``k`` (a probability or a one-hot
    mask). Memory stays at two float32 volumes of ``new_shape`` whatever ``num_classes``.
    """
    new_shape = tuple(int(s) for s in new_shape)
    dtype = np.uint8 if num_classes <= 256 else np.uint16
    best = np.full(new_shape, -np.inf, dtype=np.float32)
    arg = np.zeros(new_shape, dtype=dtype)
    for k in range(num_classes):
        resized = resize(channel(k)[None], new_shape)[0]
        better = resized > best
        best[better] = resized[better]
        arg[better] = k
    return arg


def _target_shape(
    plan: Plan, cropped_t: Sequence[int], spacing_t: Sequence[float]
) -> tuple[int, ...]:
    out = []
    for size, sp, tgt in zip(cropped_t, spacing_t, plan.target_spacing, strict=True):
        out.append(size if tgt is None else max(1, round(size * sp / tgt)))
    return tuple(int(v) for v in out)


def preprocess_image(image: Image, plan: Plan) -> tuple[np.ndarray, CaseGeometry]:
    """Crop to the non-zero box, normalise, transpose and resample one image.

    Args:
        image: channel-last ``(*spatial, C)`` image (``channels=True``) or a one-channel
            image without channel axis.

    Returns:
        ``(data, geometry)``: ``data`` is ``(C, *resampled)`` float32 in transposed order.
    """
    arr = image.array if image.channels else image.array[..., None]
    if image.ndim != plan.data_dims:
        raise InputError(f"the model was planned for {plan.data_dims}D images, got {image.ndim}D")
    bbox = nonzero_bbox(arr)
    data = np.moveaxis(arr[bbox], -1, 0)
    mask = np.any(data != 0, axis=0) if plan.use_nonzero_mask else None
    data = normalize(data, plan.normalization, mask)
    axes = (0, *(a + 1 for a in plan.transpose))
    data = np.ascontiguousarray(data.transpose(axes))
    spacing_t = [image.spacing[a] for a in plan.transpose]
    new_shape = _target_shape(plan, data.shape[1:], spacing_t)
    geom = CaseGeometry(
        shape=tuple(int(s) for s in image.shape),
        bbox=tuple((s.start, s.stop) for s in bbox),
        resampled_shape=new_shape,
    )
    return resize(data, new_shape), geom


def preprocess_label(
    label: LabelMap, geom: CaseGeometry, plan: Plan, *, case_id: str | None = None
) -> np.ndarray:
    """Crop, transpose and resample a label map on the grid of its preprocessed image.

    ``case_id`` (else the label's file, ``label.meta["path"]``) names the case in the
    ``InputError`` raised for label values that are not in the plan (``dataset.json``).

    Returns ``(*resampled)`` class indices (uint8, or uint16 beyond 256 classes).
    """
    lut = {v: i for i, v in enumerate(plan.label_values)}
    values = np.unique(label.array)
    unknown = [int(v) for v in values if int(v) not in lut]
    if unknown:
        where = f"case {case_id!r}" if case_id else str(label.meta.get("path", "label"))
        raise InputError(
            f"{where}: label values {unknown} are not in the plan's labels "
            f"{list(plan.label_values)} (the labels of dataset.json)"
        )
    table = np.zeros(int(values.max()) + 1, dtype=np.uint16)
    for v in values:
        table[int(v)] = lut[int(v)]
    seg = table[label.array[tuple(slice(a, b) for a, b in geom.bbox)]]
    seg = np.ascontiguousarray(seg.transpose(plan.transpose))
    present = [lut[int(v)] for v in values]
    if tuple(seg.shape) == geom.resampled_shape:
        return seg.astype(np.uint8 if plan.num_classes <= 256 else np.uint16)

    def onehot(k: int) -> np.ndarray:
        return (seg == k).astype(np.float32) if k in present else np.zeros(seg.shape, np.float32)

    return resize_argmax(onehot, plan.num_classes, geom.resampled_shape)
