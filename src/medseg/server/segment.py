"""Running one predict request on a pooled predictor: tool support, prompts, propagation.

Every request goes through :meth:`medseg.Predictor.predict`, which validates the prompts
(the same rules and messages as the API and CLI). On a volume, an interactive click segments
only the slice it was made on (``propagate=False``: the cached slice embedding and the
decoder, the cheap part of the model); ``propagate`` runs the Predictor's 3D propagation from
that slice through the volume.

Scribbles are offered when the model declares the ``scribbles`` prompt kind, on 2D images,
single volume slices and propagation alike. A ``text`` request names a target
(:mod:`medseg.inference.text`); clicks may go with it, and later corrections are ordinary
click requests with ``mask_input='previous'``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from medseg.errors import PromptError
from medseg.server.schemas import PredictRequest
from medseg.server.sessions import PooledPredictor

__all__ = ["Outcome", "tool_support", "check_request", "previous_mask", "run_predict"]

# Browser tools -> the prompt kind the model must accept (None: always available).
_TOOL_KINDS: dict[str, str | None] = {
    "box": "box",
    "positive_click": "points",
    "negative_click": "points",
    "scribble": "scribbles",
    "previous_mask": "mask",
    "propagate": "box",
    "brush": None,
    "eraser": None,
}
_KIND_NAMES = {"box": "box", "points": "point (click)", "scribbles": "scribble", "mask": "mask"}


def tool_support(model: Any) -> dict[str, dict[str, Any]]:
    """``{tool: {"enabled": bool, "reason": str}}`` for the browser app's tool buttons."""
    kinds = set(model.prompt_kinds)
    accepted = ", ".join(_KIND_NAMES[k] for k in sorted(kinds) if k in _KIND_NAMES)
    out: dict[str, dict[str, Any]] = {}
    for tool, kind in _TOOL_KINDS.items():
        if kind is None or kind in kinds:
            out[tool] = {"enabled": True, "reason": ""}
        else:
            out[tool] = {
                "enabled": False,
                "reason": f"{model.name} does not accept {_KIND_NAMES[kind]} prompts "
                f"(it accepts: {accepted})",
            }
    if "box" not in kinds:
        out["propagate"]["reason"] = f"propagation needs box prompts, which {model.name} lacks"
    from medseg.inference.text import accepts_text

    text = accepts_text(model)
    reason = "" if text else f"{model.name} has no LiteMedSAM encoder for text prompts"
    out["text"] = {"enabled": text, "reason": reason}
    return out


def check_request(req: PredictRequest, ndim: int, depth: int) -> int:
    """Check what only the server knows (the view, the mask upload, the slice of the view);
    returns the slice index (0 for 2D images). The prompts themselves are validated by
    :meth:`medseg.Predictor.predict`."""
    if (req.mask_input == "mask") != (req.mask is not None):
        raise PromptError("give mask with mask_input='mask' (and only then)")
    if ndim == 2:
        if req.view != "axial" or req.slice_index not in (None, 0) or req.propagate:
            raise PromptError("a 2D image has one axial slice (index 0) and nothing to propagate")
        return 0
    if req.slice_index is None:
        raise PromptError("this image is 3D: give slice_index")
    if req.slice_index >= depth:
        raise PromptError(
            f"{req.view} slice {req.slice_index} is outside the volume (0..{depth - 1})"
        )
    return req.slice_index


@dataclass(frozen=True, eq=False)
class Outcome:
    """Result on the prompted slice (``mask``, ``logits`` ``(rows, cols)``) and, after
    propagation, the block of slices ``start..stop`` holding the object."""

    index: int
    mask: np.ndarray
    logits: np.ndarray
    score: float
    model_ms: float
    block: tuple[int, int, np.ndarray] | None = None
    found: bool | None = None
    target: str | None = None


def previous_mask(req: PredictRequest, shape: tuple[int, int]) -> np.ndarray:
    """``req.mask`` (``mask_input='mask'``) as ``(rows, cols)`` logits of +/- 8 for the
    prompted slice of ``shape``."""
    from medseg.inference.prompt_input import binary_logits
    from medseg.server.encoding import rle_decode

    m = req.mask
    if m is None or tuple(m.shape) != tuple(shape):
        got = None if m is None else tuple(m.shape)
        raise PromptError(f"mask has shape {got}, the prompted slice {tuple(shape)}")
    return binary_logits(rle_decode(m.shape, m.values, m.counts, np.uint16))


def _points(req: PredictRequest) -> tuple[list[tuple[float, float]] | None, list[int] | None]:
    if not req.points:
        return None, None
    labels = list(req.point_labels) if req.point_labels else [1] * len(req.points)
    return [tuple(p) for p in req.points], labels


def run_predict(
    pooled: PooledPredictor, req: PredictRequest, index: int, previous: np.ndarray | None
) -> Outcome:
    """Segment with ``req``'s prompts (``previous``: logits to refine, or None)."""
    predictor = pooled.predictor
    points, labels = _points(req)
    extra: dict[str, Any] = {}
    if req.scribbles:
        extra["scribbles"] = [s.model_dump() for s in req.scribbles]
    with pooled.lock:
        start = time.perf_counter()
        image = predictor.image
        if req.text is not None:
            return _run_text(predictor, req, index, (points, labels, previous, extra), start)
        if image.ndim == 2:
            pred = predictor.predict(req.box, points, labels, mask_input=previous, **extra)
            ms = (time.perf_counter() - start) * 1000
            return Outcome(0, pred.mask, pred.logits, pred.score, ms)
        if req.propagate:
            pred = predictor.predict(
                req.box, points, labels, mask_input=previous, slice_index=index, **extra
            )
            ms = (time.perf_counter() - start) * 1000
            lo, hi = pred.slice_ranges[0]
            block = (lo, hi, pred.mask[lo : hi + 1])
            return Outcome(index, pred.mask[index], pred.logits[index], pred.score, ms, block)
        pred = predictor.predict(
            req.box, points, labels, mask_input=previous, slice_index=index, propagate=False,
            **extra,
        )  # fmt: skip
        ms = (time.perf_counter() - start) * 1000
    return Outcome(index, pred.mask, pred.logits, pred.score, ms)


def _run_text(
    predictor: Any, req: PredictRequest, index: int, prompts: tuple, start: float
) -> Outcome:
    """A text request (with optional correction clicks) on the image or slice ``index``;
    ``prompts`` = ``(points, labels, previous, extra)``: every prompt of the request goes to
    the Predictor, which rejects those a text prompt does not take."""
    points, labels, previous, extra = prompts
    kw: dict[str, Any] = {"text": req.text, "points": points, "point_labels": labels,
                          "box": req.box, "mask_input": previous, **extra}  # fmt: skip
    volume = predictor.image.ndim == 3
    if volume:
        kw.update(slice_index=index, propagate=req.propagate)
    pred = predictor.predict(**kw)
    ms = (time.perf_counter() - start) * 1000
    info = pred.info.get("text") or [{}]
    found, target = bool(pred.found[0]), info[0].get("target")
    if volume and req.propagate:
        lo, hi = pred.slice_ranges[0]
        block = (lo, hi, pred.mask[lo : hi + 1]) if hi >= lo else None
        return Outcome(index, pred.mask[index], pred.logits[index], pred.score, ms, block,
                       found, target)  # fmt: skip
    return Outcome(index, pred.mask, pred.logits, pred.score, ms, None, found, target)
