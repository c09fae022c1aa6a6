"""Text prompts answered by a loaded ``medseg auto`` model (issue 16).

With ``Predictor(model, auto=MODEL_DIR)`` (or ``Predictor(MODEL_DIR)``), a phrase that names
one of the automatic model's classes is answered with that class's automatic mask instead of
the text head's guess: ``predict(text="liver")`` on a model trained with a ``liver`` class
returns its mask, ``found=True`` when it has pixels. A phrase names a class when

1. its words equal the class name's (``"kidney_left"`` = ``"left kidney"`` = ``"Kidney
   left"``; names the vocabulary does not know, like ``"disk"``, route too), or
2. the vocabulary maps both to the same target (``"hepar"`` -> liver), or the phrase's target
   is the two-sided base of classes named per side (``"kidney"`` -> ``kidney_left`` and
   ``kidney_right``, their union).

Other phrases go to the text head as before; ``texts=[...]`` may mix both. A routed object's
score is 1.0 when its mask has pixels, else 0.0 (the automatic model gives no probability),
and its ``info["text"]`` entry says ``"route": "auto"`` and the class values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from medseg.errors import PromptError
from medseg.inference.first_mask import slice_range
from medseg.inference.prompt_input import binary_logits
from medseg.inference.result import Prediction, label_map_from_logits
from medseg.prompts.text import normalize_phrase, parse_target  # suggest="string": no encoder
from medseg.prompts.types import validate_slice_index

__all__ = ["class_values", "predict_routed", "routes"]


def _words(name: str) -> frozenset[str]:
    return frozenset(normalize_phrase(str(name).replace("_", " ")).split())


def _target_ids(name: str) -> tuple[str, str | None] | None:
    """``(target id, two-sided base or None)`` of a class name, None when unknown."""
    try:
        t = parse_target(str(name).replace("_", " "), suggest="string").target
    except PromptError:
        return None
    return t.id, (t.base if t.side_rule == "midline" else None)


def class_values(label_names: dict[int, str], phrase: str) -> list[int]:
    """Label values of the classes ``label_names`` (value -> name) that ``phrase`` names
    (module docstring); empty when none."""
    words = _words(phrase)
    direct = [v for v, n in sorted(label_names.items()) if words and _words(n) == words]
    if direct:
        return direct
    try:
        wanted = parse_target(phrase, suggest="string").target.id
    except PromptError:
        return []
    out = []
    for v, n in sorted(label_names.items()):
        ids = _target_ids(n)
        if ids is not None and wanted in ids:
            out.append(v)
    return out


def routes(pred: Any, texts: list[str]) -> list[list[int]] | None:
    """Per phrase, the automatic model's class values it names; None when ``pred`` has no
    automatic model or no phrase names one of its classes."""
    auto = getattr(pred, "auto", None)
    if auto is None or getattr(pred, "_auto", None) is None:
        return None
    out = [class_values(auto.label_names, t) for t in texts]
    return out if any(out) else None


def _auto_mask(pred: Any, values: list[int], z: int | None) -> np.ndarray:
    arr = np.isin(pred._auto.array, values)
    return arr if z is None else arr[z]


def predict_routed(
    pred: Any,
    texts: list[str],
    values: list[list[int]],
    slice_index: int | None,
    propagate: bool,
    stacked: bool,
    head: Callable[..., Prediction],
) -> Prediction:
    """The result of ``predict(text(s)=...)`` when some phrases name automatic classes:
    those objects are the classes' automatic masks, the others come from ``head``
    (:func:`medseg.inference.text.predict_text`, called with the remaining phrases)."""
    image = pred._require_image()
    z = None
    if image.ndim == 2 and slice_index is not None:
        raise PromptError("slice_index needs a 3D image; this image is 2D")
    if image.ndim == 3 and not propagate:
        if slice_index is None:
            raise PromptError("propagate=False needs slice_index=z, the slice to segment")
        z = validate_slice_index(slice_index, image.shape[0])
    rest = [i for i, v in enumerate(values) if not v]
    other = head(pred, [texts[i] for i in rest], slice_index, propagate, True) if rest else None
    masks, logits, scores, found, info, ranges = [], [], [], [], [], []
    for i, v in enumerate(values):
        if v:
            m = _auto_mask(pred, v, z)
            masks.append(m)
            logits.append(binary_logits(m))
            scores.append(1.0 if m.any() else 0.0)
            found.append(bool(m.any()))
            names = [pred.auto.label_names[k] for k in v]
            info.append({"text": texts[i], "route": "auto", "label": v,
                         "label_name": names, "found": found[-1]})  # fmt: skip
            if m.ndim == 3:
                ranges.append(slice_range(m)[0] if m.any() else (0, -1))
        else:
            j = rest.index(i)
            masks.append(other.mask[j])
            logits.append(other.logits[j])
            scores.append(float(other.scores[j]))
            found.append(other.found[j])
            info.append(other.info["text"][j])
            if other.slice_ranges:
                ranges.append(other.slice_ranges[j])
    mask, lg = np.stack(masks), np.stack(logits).astype(np.float32)
    res = Prediction(
        mask=mask if stacked else mask[0],
        logits=lg if stacked else lg[0],
        scores=np.asarray(scores, np.float32),
        labels=label_map_from_logits(mask, lg),
        image=image,
        found=tuple(found),
        info={
            "model": f"{pred.auto.name}+{pred.model.name}",
            "text": info,
            **({"slice_index": z} if z is not None else {}),
        },
    )
    return replace(res, slice_ranges=tuple(ranges)) if mask.ndim == 4 else res
