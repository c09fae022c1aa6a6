"""Turning the prompts given to :meth:`medseg.Predictor.predict` into a validated
:class:`~medseg.prompts.types.PromptSet` for one 2D image or slice of shape ``(H, W)``:
boxes ``(x0, y0, x1, y1)``, points ``(x, y)`` with labels, scribbles and ``mask_input``."""

from __future__ import annotations

from typing import Any

import numpy as np

from medseg.errors import PromptError
from medseg.inference.result import Prediction
from medseg.prompts.scribbles import validate_scribbles
from medseg.prompts.types import PromptSet, validate_box, validate_points

__all__ = ["BINARY_MASK_LOGIT", "binary_logits", "mask_logits", "prompt_set", "volume_logits"]

# A boolean ``mask_input`` becomes logits of +/- this value.
BINARY_MASK_LOGIT = 8.0


def binary_logits(mask: np.ndarray) -> np.ndarray:
    """Float32 logits of a mask of any shape: +BINARY_MASK_LOGIT where ``mask > 0``, else -."""
    return np.where(np.asarray(mask) > 0, BINARY_MASK_LOGIT, -BINARY_MASK_LOGIT).astype(np.float32)


def mask_logits(
    mask_input: Any,
    shape: tuple[int, int],
    n: int,
    z: int | None,
    image_shape: tuple[int, ...] | None = None,
) -> np.ndarray:
    """``mask_input`` (Prediction, bool mask or logits) as ``(n, H, W)`` float32 logits.

    A mask of the whole volume ``image_shape`` ``(Z, Y, X)`` is cut to slice ``z``.
    """
    if isinstance(mask_input, Prediction):
        arr = mask_input.logits[mask_input.best] if mask_input.multimask else mask_input.logits
    else:
        arr = np.asarray(mask_input)
        if arr.dtype == bool or np.issubdtype(arr.dtype, np.integer):
            arr = binary_logits(arr)
    arr = np.asarray(arr, np.float32)
    if z is not None and image_shape is not None and arr.shape[-3:] == tuple(image_shape):
        arr = arr[..., z, :, :]
    if arr.shape == shape:
        arr = arr[None]
    if arr.shape != (n, *shape):
        raise PromptError(
            f"mask_input shape {arr.shape} does not match the image {shape} for {n} object(s)"
        )
    if not np.all(np.isfinite(arr)):
        raise PromptError("mask_input contains NaN or inf")
    return arr


def volume_logits(mask_input: Any, image_shape: tuple[int, ...]) -> np.ndarray | None:
    """``mask_input`` as ``(N, Z, Y, X)`` float32 logits when it covers the whole volume
    ``image_shape`` ``(Z, Y, X)`` (a 3D :class:`Prediction`, mask or logits), else None
    (a mask of one slice, or no mask)."""
    if mask_input is None or len(image_shape) != 3:
        return None
    arr = mask_input.logits if isinstance(mask_input, Prediction) else np.asarray(mask_input)
    if arr.shape[-3:] != tuple(image_shape) or arr.ndim not in (3, 4):
        return None
    if arr.dtype == bool or np.issubdtype(arr.dtype, np.integer):
        arr = binary_logits(arr)
    arr = np.asarray(arr, np.float32)
    if not np.all(np.isfinite(arr)):
        raise PromptError("mask_input contains NaN or inf")
    return arr if arr.ndim == 4 else arr[None]


def prompt_set(
    shape: tuple[int, int],
    box: Any,
    boxes: Any,
    points: Any,
    point_labels: Any,
    mask_input: Any,
    z: int | None = None,
    scribbles: Any = None,
    *,
    image_shape: tuple[int, ...] | None = None,
) -> PromptSet:
    """Validate the prompts of one image or slice ``shape`` (see :func:`mask_logits` for
    ``z`` and ``image_shape``); raises ``PromptError`` naming the problem."""
    if box is not None and boxes is not None:
        raise PromptError("give either box= (one object) or boxes= (several), not both")
    if point_labels is not None and points is None:
        raise PromptError("point_labels given without points")
    box_arr = None
    if boxes is not None:
        if len(boxes) == 0:
            raise PromptError("boxes is empty: give at least one box")
        box_arr = np.stack([validate_box(b, shape) for b in boxes])
    elif box is not None:
        box_arr = validate_box(box, shape)[None]
    n = 1 if box_arr is None else len(box_arr)
    pts = labels = None
    if points is not None:
        if n != 1:
            raise PromptError("points go with one object; predict several boxes separately")
        p, lab = validate_points(points, point_labels, shape)
        pts, labels = p[None], lab[None]
    scr = None
    if scribbles is not None:
        if n != 1:
            raise PromptError("scribbles go with one object; predict several boxes separately")
        scr = validate_scribbles(scribbles, shape)[None]
    masks = None
    if mask_input is not None:
        masks = mask_logits(mask_input, shape, n, z, image_shape)
    return PromptSet(
        boxes=box_arr, points=pts, point_labels=labels, mask_input=masks, scribbles=scr
    )
