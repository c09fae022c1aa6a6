"""The display frame: a volume is segmented on its slices as the browser app shows them.

The app shows every volume in the radiological convention (:mod:`medseg.io.orientation`:
e.g. a RAS NIfTI flipped up-down and left-right), and a CNN's mask of a flipped slice is not
exactly the flipped mask of the slice. So that one prompt gives one mask whichever door it
comes through, the model always sees the slices the app shows:

- the server segments the view images of :func:`segmented_image` (its prompts are pixels of
  the view's slices);
- :meth:`medseg.Predictor.set_image` with ``frame="view"`` (the default, hence also
  ``medseg segment``) segments :func:`segmented_image` of the :func:`~medseg.io.orientation.
  slice_view` (the view whose slice ``i`` is the array's slice ``z = i``), with the prompts
  given in array indices ``(x, y[, z])`` of the image as stored turned into its pixels and
  the results turned back (:class:`ViewFrame`). ``frame="array"`` segments the slices as
  stored.

2D images, volumes whose view is the array order, and predictors given an automatic model
(whose network sees the volume as stored) are segmented as they are.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.inference.prompt_input import prompt_set
from medseg.inference.result import Prediction
from medseg.io.image import Image
from medseg.io.orientation import (
    array_to_view,
    box_to_view,
    slice_view,
    view_axes,
    view_image,
    view_to_array,
)
from medseg.prompts.types import validate_box3d

__all__ = ["FRAMES", "ViewFrame", "in_view_frame", "segmented_image"]

#: ``Predictor.set_image(frame=...)`` values: the app's display frame, or the array as stored.
FRAMES: tuple[str, ...] = ("view", "array")


def segmented_image(image: Image, view: str | None = None) -> Image:
    """The image the model segments for ``view`` (default: :func:`slice_view`): the volume
    re-stacked ``(slices, rows, cols)`` as the app shows that view; 2D images and views in
    array order: ``image`` itself."""
    if image.ndim == 2:
        return image
    return view_image(image, slice_view(image) if view is None else view)


class ViewFrame:
    """Array indices of a volume ``source`` ``(Z, Y, X)`` <-> pixels of ``shown``, the
    volume as the app shows its :func:`slice_view` (the same ``z`` slices, each transposed
    and/or flipped in plane: ``(Z, rows, cols)``)."""

    def __init__(self, source: Image) -> None:
        self.source = source
        self.axes = view_axes(source, slice_view(source))
        self.shown = segmented_image(source)
        self.active = False  # inside a converted predict(): nested calls are in view pixels

    @classmethod
    def of(cls, image: Image, frame: str, auto: bool = False) -> ViewFrame | None:
        """The frame ``set_image(image, frame=...)`` segments in; None for the image as it
        is (``frame="array"``, an automatic model, a 2D image or a volume shown as stored)."""
        if frame not in FRAMES:
            raise InputError(f"unknown frame {frame!r}; use one of {', '.join(FRAMES)}")
        if frame == "array" or auto or image.ndim == 2 or segmented_image(image) is image:
            return None
        return cls(image)

    # ---- arrays: the last two axes are (Y, X) of a slice ------------------------------
    def to_view(self, arr: np.ndarray) -> np.ndarray:
        """``(..., Y, X)`` array-order slices as ``(..., rows, cols)`` pixels of the view."""
        out = np.asarray(arr)
        if self.axes["rows"] == 2:
            out = out.swapaxes(-1, -2)
        if self.axes["flip_rows"]:
            out = out[..., ::-1, :]
        if self.axes["flip_cols"]:
            out = out[..., ::-1]
        return np.ascontiguousarray(out)

    def to_array(self, arr: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`to_view`: ``(..., rows, cols)`` -> ``(..., Y, X)``."""
        out = np.asarray(arr)
        if self.axes["flip_cols"]:
            out = out[..., ::-1]
        if self.axes["flip_rows"]:
            out = out[..., ::-1, :]
        if self.axes["rows"] == 2:
            out = out.swapaxes(-1, -2)
        return np.ascontiguousarray(out)

    # ---- prompts ---------------------------------------------------------------------
    def _point(self, p: Any) -> tuple[float, float]:
        col, row, _ = array_to_view(self.source, self.axes, p[0], p[1], 0)
        return col, row

    def _box(self, b: Any) -> tuple[float, float, float, float]:
        """An array box as view pixels; a far edge on the border (``x1 = W``) stays there."""
        _, n_rows, n_cols = self.shown.shape
        c0, r0, c1, r1 = box_to_view(self.source, self.axes, b)
        return max(c0, 0.0), max(r0, 0.0), min(c1, n_cols), min(r1, n_rows)

    def _mask(self, m: Any) -> Any:
        """A mask or logits of one slice / the volume (``(..., Y, X)``) in view pixels;
        anything else unchanged (the Predictor rejects it)."""
        if isinstance(m, Prediction):
            return replace(m, mask=self.to_view(m.mask), logits=self.to_view(m.logits))
        arr = None if m is None else np.asarray(m)
        if arr is None or arr.ndim < 2 or arr.shape[-2:] != tuple(self.source.shape[1:]):
            return m
        return self.to_view(arr)

    def _scribbles(self, s: Any) -> Any:
        """Validated scribbles of any accepted form (masks turned, polylines as dicts of
        view pixels)."""
        if isinstance(s, np.ndarray):
            return self.to_view(s)
        if isinstance(s, dict) and {"positive", "negative"} & set(s):
            return {k: None if v is None else self.to_view(v) for k, v in s.items()}
        if len(s) == 2 and all(v is None or isinstance(v, np.ndarray) for v in s):
            return tuple(None if v is None else self.to_view(v) for v in s)  # mask pair
        out = []
        for item in s:  # polylines: converted point by point, drawn in view pixels
            if isinstance(item, dict):
                points, label = item["points"], item.get("label", 1)
            elif hasattr(item, "points"):
                points, label = item.points, item.label
            else:
                points, label = item
            out.append({"points": [self._point(p) for p in points], "label": label})
        return out

    def prompts(self, kw: dict[str, Any]) -> dict[str, Any]:
        """``predict()`` keywords in array indices of ``source`` as view pixels: boxes, a
        box3d's x/y extent, points, scribbles and ``mask_input``; slice indices, text and
        everything else unchanged. The prompts are validated first in array indices, so
        that errors quote the coordinates as given."""
        shape: tuple[int, int, int] = tuple(self.source.shape)  # type: ignore[assignment]
        if kw.get("box3d") is not None:
            validate_box3d(kw["box3d"], shape)
        first = [kw.get(k) for k in ("box", "boxes", "points", "point_labels")]
        if any(v is not None for v in (*first[:3], kw.get("scribbles"))):
            prompt_set(shape[1:], *first, None, scribbles=kw.get("scribbles"))
        out = dict(kw)
        convert: dict[str, Callable[[Any], Any]] = {
            "box": self._box,
            "boxes": lambda bs: [self._box(b) for b in bs],
            "box3d": lambda b: self._box3d(b),
            "points": lambda ps: [self._point(p) for p in ps],
            "scribbles": self._scribbles,
            "mask_input": self._mask,
        }
        for key, fn in convert.items():
            if kw.get(key) is not None:
                out[key] = fn(kw[key])
        return out

    def _box3d(self, b: Any) -> tuple[float, ...]:
        c0, r0, c1, r1 = self._box((b[0], b[1], b[3], b[4]))
        return (c0, r0, b[2], c1, r1, b[5])

    # ---- results ---------------------------------------------------------------------
    def _box_back(self, b: Any, z: int) -> tuple[float, float, float, float]:
        x0, y0 = view_to_array(self.source, self.axes, b[0], b[1], z)[:2]
        x1, y1 = view_to_array(self.source, self.axes, b[2], b[3], z)[:2]
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)

    def prediction(self, pred: Prediction) -> Prediction:
        """A :class:`Prediction` on ``shown`` in array order on ``source`` (masks, logits,
        labels, ``info["slice_boxes"]``); scores, slice ranges and ``found`` unchanged."""
        info = dict(pred.info)
        if "slice_boxes" in info:
            info["slice_boxes"] = tuple(
                {z: self._box_back(b, z) for z, b in per.items()} for per in info["slice_boxes"]
            )
        return replace(pred, mask=self.to_array(pred.mask), logits=self.to_array(pred.logits),
                       labels=self.to_array(pred.labels), image=self.source, info=info)  # fmt: skip


def in_view_frame(predict: Callable[..., Prediction]) -> Callable[..., Prediction]:
    """Decorate ``Predictor.predict``: with a :class:`ViewFrame` set (``self._frame``) the
    prompts go in as view pixels and the result comes back in array order; calls made
    from inside (text search, refinement) are already in view pixels."""
    signature = inspect.signature(predict)

    @functools.wraps(predict)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Prediction:
        frame: ViewFrame | None = self._frame
        if frame is None or frame.active:
            return predict(self, *args, **kwargs)
        given = signature.bind(self, *args, **kwargs).arguments
        kw = frame.prompts({k: v for k, v in given.items() if k != "self"})
        frame.active = True
        try:
            return frame.prediction(predict(self, **kw))
        finally:
            frame.active = False

    return wrapper
