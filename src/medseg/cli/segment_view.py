"""``medseg segment`` runs the model on slices as the browser app shows them.

Prompts on the command line are 0-based array indices ``(x, y[, z])`` of the image as
stored, the numbers the app's cursor readout and "copy as CLI" line show. The app segments
the slices of its view images (:func:`medseg.io.orientation.view_image`: radiological
orientation, e.g. a RAS NIfTI flipped up-down and left-right), and a CNN's mask of a flipped
slice is not exactly the flipped mask. So that the same prompt gives the same mask in both,
the CLI segments the view whose slices are the array's z slices
(:func:`~medseg.io.orientation.slice_view`) with the prompts converted to its pixels, and
writes the label map back in array order on the input's grid. 2D images and volumes whose
view is the array order are segmented as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from medseg.cli.segment_output import cli_prompt_message
from medseg.errors import PromptError
from medseg.io.image import Image, LabelMap
from medseg.io.orientation import (
    array_to_view,
    box_to_view,
    orient_slice,
    slice_view,
    unoriented,
    view_axes,
    view_image,
)

__all__ = ["display_frame", "prompts_to_view"]


def _check(shape: tuple[int, ...], kw: dict[str, Any]) -> None:
    """Validate the prompts in the user's array indices, so that errors quote them."""
    from medseg.inference.prompt_input import prompt_set
    from medseg.prompts.types import validate_box3d

    try:
        if "box3d" in kw:
            validate_box3d(kw["box3d"], shape)  # type: ignore[arg-type]
        first = (kw.get("box"), kw.get("boxes"), kw.get("points"), kw.get("point_labels"))
        if any(v is not None for v in (*first[:3], kw.get("scribbles"))):
            prompt_set(shape[1:], *first, None, scribbles=kw.get("scribbles"))  # type: ignore[arg-type]
    except PromptError as exc:
        raise PromptError(cli_prompt_message(str(exc))) from exc


def prompts_to_view(image: Image, kw: dict[str, Any]) -> dict[str, Any]:
    """The predict() keywords ``kw`` (array indices of ``image``, a volume) as pixels of
    :func:`slice_view`'s slices: boxes, a box3d's x/y extent, points, scribble polylines and
    ``(2, Y, X)`` scribble masks; slice indices and everything else unchanged. The prompts
    are checked first (errors name the given coordinates); a box edge on the far border
    (``x1 = W``) stays on the border."""
    ax = view_axes(image, slice_view(image))
    shape = image.shape
    _check(shape, kw)
    n_rows, n_cols = shape[ax["rows"]], shape[ax["cols"]]

    def point(p: Any) -> tuple[float, float]:
        col, row, _ = array_to_view(shape, ax, p[0], p[1], 0)
        return col, row

    def box(b: Any) -> tuple[float, float, float, float]:
        c0, r0, c1, r1 = box_to_view(shape, ax, b)
        return max(c0, 0.0), max(r0, 0.0), min(c1, n_cols), min(r1, n_rows)

    out = dict(kw)
    if "box" in kw:
        out["box"] = box(kw["box"])
    if "boxes" in kw:
        out["boxes"] = [box(b) for b in kw["boxes"]]
    if "box3d" in kw:
        b = kw["box3d"]
        c0, r0, c1, r1 = box((b[0], b[1], b[3], b[4]))
        out["box3d"] = (c0, r0, b[2], c1, r1, b[5])
    if "points" in kw:
        out["points"] = [point(p) for p in kw["points"]]
    scribbles = kw.get("scribbles")
    if isinstance(scribbles, np.ndarray):
        out["scribbles"] = np.stack(
            [np.ascontiguousarray(orient_slice(image, m)) for m in scribbles]
        )
    elif scribbles is not None:
        out["scribbles"] = [
            {"points": [point(p) for p in s["points"]], "label": s.get("label", 1)}
            for s in scribbles
        ]
    return out


def display_frame(
    image: Image, kw: dict[str, Any]
) -> tuple[Image, dict[str, Any], Callable[[LabelMap], LabelMap]]:
    """``(image to segment, its predict() keywords, label map -> label map on image's grid
    in array order)``; the image itself, ``kw`` and the identity when nothing is to turn."""
    shown = image if image.ndim == 2 else view_image(image, slice_view(image))
    if shown is image:
        return image, kw, lambda labels: labels
    ax = view_axes(image, slice_view(image))

    def back(labels: LabelMap) -> LabelMap:
        arr = np.ascontiguousarray(unoriented(np.asarray(labels.array), ax))
        return LabelMap.like(image, arr, label_names=dict(labels.label_names))

    return shown, prompts_to_view(image, kw), back
