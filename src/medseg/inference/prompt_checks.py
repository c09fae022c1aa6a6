"""Checks of :meth:`medseg.Predictor.predict`'s prompt arguments, and a 3D prompt's start.

``first`` is the tuple ``(box, boxes, points, point_labels, mask_input, scribbles)`` of the
prompts on one image or start slice, as the Predictor passes them between its steps.
"""

from __future__ import annotations

from typing import Any

from medseg.errors import PromptError
from medseg.models.base import PromptableModel
from medseg.prompts.types import validate_box3d, validate_slice_index

__all__ = ["check_prompts", "given_kinds", "start_3d"]


def given_kinds(first: tuple, box3d: Any) -> set[str]:
    """The prompt kinds (``"box"``, ``"points"``, ``"scribbles"``, ``"mask"``) given in
    ``first`` and ``box3d`` (``point_labels`` alone is no prompt)."""
    box, boxes, points, _point_labels, mask_input, scribbles = first
    given = (("box", box), ("box", boxes), ("box", box3d), ("points", points),
             ("scribbles", scribbles), ("mask", mask_input))  # fmt: skip
    return {k for k, v in given if v is not None}


def check_prompts(
    model: PromptableModel,
    kinds: set[str],
    *,
    ndim: int,
    multimask: bool,
    stacked: bool,
    auto: bool,
    label: int | None,
    point_labels: Any,
) -> None:
    """Raise ``PromptError`` for prompts ``model`` cannot take on an ``ndim``-D image:
    unsupported kinds, ``multimask`` for several objects / a volume / a model without it;
    without an automatic model (``auto`` False) also ``label=`` and no prompt at all."""
    unsupported = kinds - set(model.prompt_kinds)
    if unsupported:
        raise PromptError(
            f"model {model.name!r} does not accept {', '.join(sorted(unsupported))} "
            f"prompts; it accepts: {', '.join(sorted(model.prompt_kinds))}"
        )
    if multimask and (stacked or ndim == 3):
        raise PromptError("multimask=True works for one object on a 2D image only")
    if multimask and model.num_multimask_outputs < 1:
        raise PromptError(f"model {model.name!r} has no multimask output")
    if auto:
        return
    if label is not None:
        raise PromptError("label= picks a class of a medseg auto model (Predictor(MODEL_DIR))")
    if not kinds and point_labels is None:
        raise PromptError("no prompt given: pass box=, points=, scribbles= or mask_input=")


def start_3d(
    shape: tuple[int, ...], box: Any, boxes: Any, slice_index: int | None, box3d: Any
) -> tuple[Any, int, tuple[int, int]]:
    """(box, start slice, z range) for a 3D prompt on a volume of ``shape`` ``(Z, Y, X)``:
    the 2D prompt's slice ``slice_index`` and the whole volume, or ``box3d``'s x/y box, its
    middle slice (or ``slice_index``) and its z range."""
    if box3d is None:
        if slice_index is None:
            raise PromptError("this image is 3D: give slice_index=z with the 2D prompt, or "
                              "box3d=(x0, y0, z0, x1, y1, z1)")  # fmt: skip
        return box, validate_slice_index(slice_index, shape[0]), (0, shape[0] - 1)
    if box is not None or boxes is not None:
        raise PromptError("give either box3d= or box=/boxes= with slice_index, not both")
    b = validate_box3d(box3d, shape)
    z_range = (round(b[2]), round(b[5]))
    start = (z_range[0] + z_range[1]) // 2 if slice_index is None else slice_index
    start = validate_slice_index(start, shape[0])
    if not z_range[0] <= start <= z_range[1]:
        raise PromptError(f"slice_index {start} is outside box3d's z range {z_range}")
    return (b[0], b[1], b[3], b[4]), start, z_range
