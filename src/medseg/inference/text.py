"""Text prompts for :class:`medseg.Predictor`: ``predict(text="left kidney")``.

Flow (2D image, or one slice of a volume):

1. :func:`medseg.prompts.text.parse_target` maps the phrase to a vocabulary target (unknown,
   ambiguous or wrong-modality phrases raise ``PromptError`` with the nearest names);
2. the text head (:class:`medseg.models.text.TextDecoder`) decodes the LiteMedSAM embedding
   the Predictor already caches with the MiniLM vector of the target's name: a mask of the
   two-sided target ("kidney") and a **presence** probability;
3. presence below the weights' threshold, or a target only ever seen in colour photographs
   asked of a grayscale image (or the reverse, :func:`plausible`): the target is reported
   as **not found** (empty mask, ``Prediction.found[i]`` False) rather than a guess;
4. a side ("left kidney") keeps the connected components whose centre lies on that side of
   the body's midline (:func:`side_cut`).

Volumes: without ``slice_index`` the target is looked for on up to ``SEARCH_SLICES`` evenly
spaced slices and the slice with the highest presence starts; the box of its mask is then
propagated through the volume as a box prompt would be (``docs/models.md``, "3D
propagation"). The text head works on LiteMedSAM's embedding, so it needs the ``litemedsam``
or ``litemedsam+interactive`` (default) model. Corrections afterwards are ordinary prompts
with the text result as ``mask_input``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
from scipy import ndimage

from medseg.errors import PromptError
from medseg.inference.result import Prediction, label_map_from_logits
from medseg.io.image import Image
from medseg.prompts.text import TextQuery, load_vocabulary, parse_target
from medseg.prompts.types import validate_slice_index

__all__ = [
    "SEARCH_SLICES",
    "COLOUR_MODALITIES",
    "GRAY_MODALITIES",
    "accepts_text",
    "is_colour",
    "plausible",
    "lite_parts",
    "patient_left_is_high_x",
    "predict_text",
    "refine_text",
    "side_cut",
    "text_decoder",
    "text_list",
]

log = logging.getLogger(__name__)

SEARCH_SLICES = 12
EMPTY_LOGIT = -20.0  # logit written for "not found" (finite, so JSON-safe)
# Vocabulary modalities seen only in colour photographs / only in grayscale scans: a target
# of the one kind is not looked for in an image of the other (an 8-bit PNG has no modality).
COLOUR_MODALITIES = frozenset({"endoscopy", "dermoscopy", "fundus", "histopathology"})
GRAY_MODALITIES = frozenset({"CT", "MR", "XR", "US", "MG", "XA", "EM"})


def is_colour(image: Image) -> bool:
    """True for an RGB(A) 2D image whose channels differ (not a grayscale saved as RGB)."""
    if not image.is_rgb:
        return False
    arr = np.asarray(image.array)
    step = max(1, int(np.ceil(np.sqrt(arr.shape[0] * arr.shape[1] / 65536))))
    rgb = arr[::step, ::step, :3].astype(np.float32)
    spread = float(np.ptp(rgb, axis=-1).mean())
    return spread > 0.02 * max(float(np.ptp(rgb)), 1e-6)


def plausible(q: TextQuery, colour: bool) -> bool:
    """False when the target is only ever seen in the other kind of image (colour vs
    grayscale): it is reported as not found without asking the text head."""
    mods = set(q.target.modalities)
    if not mods:
        return True
    return not (mods <= (GRAY_MODALITIES if colour else COLOUR_MODALITIES))


def accepts_text(model: Any) -> bool:
    """True when ``model`` has LiteMedSAM's image encoder, which the text head decodes."""
    try:
        lite_parts(model, None)
    except PromptError:
        return False
    return True


def lite_parts(model: Any, embedding: Any) -> tuple[Any, Any]:
    """``(LiteMedSAM model, LiteMedSAM embedding)`` inside ``model`` and its ``embedding``:
    the model's ``text_backbone(embedding)`` capability (LiteMedSAM, ``litemedsam+interactive``).
    Raises ``PromptError`` for a model without one."""
    backbone = getattr(model, "text_backbone", None)
    parts = None if backbone is None else backbone(embedding)
    if parts is None:
        raise PromptError(
            f"text prompts need LiteMedSAM's image encoder; model {model.name!r} has none: use "
            "the default model (litemedsam+interactive) or litemedsam"
        )
    return parts


def patient_left_is_high_x(image: Image) -> bool:
    """True when the column index grows towards the patient's left (LPS +x).

    Images without geometry (PNG, numpy) have the identity direction: radiological display,
    patient's left on the image's right. Raises ``PromptError`` when the columns do not run
    left-right (a sagittal slice), so no side can be cut.
    """
    col = np.asarray(image.direction, float)[:, 0]
    if abs(col[0]) < 0.5 or abs(col[0]) < np.abs(col[1:]).max(initial=0.0):
        raise PromptError(
            "this image's columns do not run left-right (a sagittal view?): left/right cannot "
            "be told apart; name the two-sided target instead"
        )
    return bool(col[0] > 0)


def _midline(body: np.ndarray) -> float:
    """Column of the body's centre: the centroid of the brighter half of the ``(H, W)``
    normalised image (falls back to the image centre)."""
    fg = body > np.median(body)
    if not fg.any():
        return (body.shape[1] - 1) / 2
    return float(np.nonzero(fg)[1].mean())


def side_cut(mask: np.ndarray, body: np.ndarray, side: str, left_high_x: bool = True) -> np.ndarray:
    """The components of ``mask`` ``(H, W)`` whose centroid is on ``side`` of the midline.

    ``body`` is the normalised image ``(H, W)`` in ``[0, 1]`` (its bright half gives the
    midline); ``left_high_x``: the patient's left is at high column indices.
    """
    if side not in ("left", "right"):
        raise PromptError(f"side must be 'left' or 'right', got {side!r}")
    comps, n = ndimage.label(mask)
    if n == 0:
        return np.zeros_like(mask, bool)
    mid = _midline(body)
    cols = ndimage.center_of_mass(np.ones_like(comps), comps, range(1, n + 1))
    want_high = (side == "left") == left_high_x
    keep = [i + 1 for i, (_, x) in enumerate(cols) if (x > mid) == want_high]
    return np.isin(comps, keep)


def _decode_2d(pred: Any, queries: list[TextQuery], z: int | None) -> tuple[np.ndarray, ...]:
    """Logits ``(N, H, W)``, presence ``(N,)``, found ``(N,)`` and found-by-the-prior ``(N,)``
    of ``queries`` on the 2D image or slice ``z``."""
    lite, emb = lite_parts(pred.model, pred.embedding(z))
    decoder = text_decoder(pred, lite)
    vectors = np.stack([decoder.vector(_names(q)) for q in queries])
    d = decoder.decode(emb, vectors)
    logits, presence = d.logits[:, 0].copy(), d.scores[:, 0].copy()
    colour = is_colour(pred.image)
    found = (presence >= decoder.threshold) & np.array([plausible(q, colour) for q in queries])
    unit = pred._unit if z is None else pred._unit[z]
    body = unit if unit.ndim == 2 else unit.mean(-1)
    by_prior = np.zeros(len(queries), bool)
    for i, q in enumerate(queries):
        if not found[i] and not colour and plausible(q, colour):
            _prior_fallback(pred, q, lite, emb, body, i, (logits, presence, found))
            by_prior[i] = found[i]
        mask = logits[i] > 0
        if found[i] and q.side is not None:
            keep = side_cut(mask, body, q.side, patient_left_is_high_x(pred.image))
            logits[i] = np.where(keep | ~mask, logits[i], EMPTY_LOGIT)
        if not found[i] or not (logits[i] > 0).any():
            found[i] = False
            logits[i] = EMPTY_LOGIT
    return logits, presence.astype(np.float32), found, by_prior & found


def _prior_fallback(pred: Any, q: TextQuery, lite: Any, emb: Any, unit: np.ndarray, i: int,
                    out: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:  # fmt: skip
    """Where the head found nothing, the body-relative anatomical prior's mask
    (:mod:`medseg.models.text_prior`) is written into row ``i`` of ``out`` = (logits,
    presence, found). Opt-in, measured no better (``docs/benchmarks.md``): ``pred.text_prior``
    = True (the bundled prior) or a prior file; unset / False / None: off."""
    setting = getattr(pred, "text_prior", False)
    if setting is None or setting is False:
        return
    from medseg.models import text_prior

    prior = text_prior.load_prior(None if setting is True else setting)
    choice = text_prior.answer(prior, pred.image, unit, lite, emb, q.target.id, q.side is not None)
    if choice is not None:
        out[0][i], out[1][i], out[2][i] = choice.logits, choice.score, True


def text_decoder(pred: Any, lite: Any) -> Any:
    """The Predictor's text head (loaded on first use; ``pred.text_weights`` or bundled)."""
    from medseg.models.text import TextDecoder

    if pred._text_decoder is None or pred._text_decoder.lite is not lite:
        pred._text_decoder = TextDecoder(lite, pred.text_weights)
    return pred._text_decoder


def _names(q: TextQuery) -> list[str]:
    """Phrases to look up for the model target of ``q`` (the two-sided base's names)."""
    from medseg.prompts.text import normalize_phrase

    base = load_vocabulary().targets[q.model_target]
    return [normalize_phrase(p) for p in (base.name, *base.synonyms)]


def _info(queries: list[TextQuery], presence: np.ndarray, found: np.ndarray,
          prior: Any = None) -> list[dict]:  # fmt: skip
    prior = np.zeros(len(queries), bool) if prior is None else prior
    return [{"text": q.text, "target": q.target.name, "side": q.side,
             "presence": round(float(p), 4), "found": bool(f), "prior": bool(b)}
            for q, p, f, b in zip(queries, presence, found, prior, strict=True)]  # fmt: skip


def text_list(
    text: Any, texts: Any, kinds: set[str], label: int | None, multimask: bool
) -> tuple[list[str], bool]:
    """``(phrases, stacked)`` from ``predict(text=...)`` / ``predict(texts=[...])``."""
    if text is not None and texts is not None:
        raise PromptError("give text= (one target) or texts= (several), not both")
    others = kinds - {"points"}
    if others or label is not None or multimask:
        given = sorted(others | ({"label"} if label is not None else set()))
        raise PromptError(
            f"text prompts take clicks (points=) only, not {', '.join(given)}; correct the "
            "text result afterwards with mask_input=result and other prompts"
            if given
            else "text prompts have no multimask output"
        )
    if "points" in kinds and texts is not None:
        raise PromptError("clicks correct one text target: use text=..., not texts=[...]")
    if text is not None:
        if not isinstance(text, str):
            raise PromptError(f"text must be a string, got {type(text).__name__}")
        return [text], False
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts) or not len(texts):
        raise PromptError("texts must be a non-empty list of strings, e.g. ['liver', 'spleen']")
    return list(texts), True


def predict_text(
    pred: Any, texts: list[str], slice_index: int | None, propagate: bool, stacked: bool
) -> Prediction:
    """Segment the targets ``texts`` name on ``pred``'s current image (module docstring)."""
    image = pred._require_image()
    from medseg.inference import text_auto  # phrases naming a loaded auto model's classes

    routed = text_auto.routes(pred, texts)
    if routed is not None:
        return text_auto.predict_routed(pred, texts, routed, slice_index, propagate, stacked,
                                        predict_text)  # fmt: skip
    queries = [parse_target(t, modality=image.modality) for t in texts]
    if image.ndim == 2:
        if slice_index is not None:
            raise PromptError("slice_index needs a 3D image; this image is 2D")
        logits, presence, found, prior = _decode_2d(pred, queries, None)
        return _result(pred, image, logits, presence, (found, prior), queries, stacked, {})
    if not propagate:
        if slice_index is None:
            raise PromptError("propagate=False needs slice_index=z, the slice to segment")
        z = validate_slice_index(slice_index, image.shape[0])
        logits, presence, found, prior = _decode_2d(pred, queries, z)
        extra = {"slice_index": z}
        return _result(pred, image, logits, presence, (found, prior), queries, stacked, extra)
    objects = [_volume_object(pred, q, slice_index) for q in queries]
    return _stack_volume(pred, image, objects, queries, stacked)


def refine_text(
    pred: Any, first: Prediction, points: Any, point_labels: Any, z: int | None, propagate: bool
) -> Prediction:
    """``first`` (a one-target text result) corrected by clicks ``points`` ``(N, 2|3)``
    (``(x, y[, z])``): the text mask is the ``mask_input`` of an ordinary click prompt. A
    target the head did not find is corrected by the clicks alone (its empty mask would
    only pull the result towards background; nor is a guess of the anatomical prior that
    every click, positive and outside it, contradicts)."""
    kw: dict[str, Any] = {"slice_index": z} if z is not None else {}
    if first.found[0] and not _prior_contradicted(first, points, point_labels):
        kw["mask_input"] = first
    if pred.image.ndim == 3 and not propagate:
        kw["propagate"] = False
    r = pred.predict(points=points, point_labels=point_labels, **kw)
    info = {**r.info, "text": first.info["text"], "model": first.info["model"]}
    return replace(r, found=(bool(r.mask.any()),), info=info)


def _prior_contradicted(first: Prediction, points: Any, point_labels: Any) -> bool:
    """True when ``first`` is the anatomical prior's guess (2D) and every click is a
    positive one outside its mask: the guess was the wrong structure, so it is not kept."""
    entry = first.info.get("text", [{}])[0]
    mask = np.asarray(first.mask)
    if not entry.get("prior") or mask.ndim != 2:
        return False
    pts = np.asarray(points, float).reshape(-1, np.asarray(points).shape[-1])
    labels = np.ones(len(pts), int) if point_labels is None else np.asarray(point_labels)
    h, w = mask.shape
    for (x, y, *_), lab in zip(pts, labels, strict=True):
        inside = 0 <= int(y) < h and 0 <= int(x) < w and bool(mask[int(y), int(x)])
        if lab == 0 or inside:
            return False
    return True


def _result(pred, image, logits, presence, found, queries, stacked, extra) -> Prediction:
    found, prior = found if isinstance(found, tuple) else (found, None)
    mask = logits > 0
    labels = label_map_from_logits(mask, logits)
    entries = _info(queries, presence, found, prior)
    info = {"model": f"medseg-text+{pred.model.name}", "text": entries}
    return Prediction(
        mask=mask if stacked else mask[0],
        logits=logits if stacked else logits[0],
        scores=presence,
        labels=labels,
        image=image,
        found=tuple(bool(f) for f in found),
        info={**info, **extra},
    )


def _search_slices(depth: int) -> list[int]:
    """Up to ``SEARCH_SLICES`` evenly spaced slices of the central 80 % of the volume."""
    lo = int(depth * 0.1)
    hi = max(lo, int(np.ceil(depth * 0.9)) - 1)
    return sorted({int(v + 0.5) for v in np.linspace(lo, hi, min(depth, SEARCH_SLICES))})


def _volume_object(pred: Any, q: TextQuery, slice_index: int | None) -> tuple:
    """``(Prediction or None, presence, start slice)`` of one target in the volume."""
    depth = pred.image.shape[0]
    if slice_index is not None:
        zs = [validate_slice_index(slice_index, depth)]
    else:
        zs = _search_slices(depth)
    best, top = None, (0.0, zs[len(zs) // 2])
    for z in zs:
        logits, presence, found, _ = _decode_2d(pred, [q], z)
        area = int((logits[0] > 0).sum())
        top = max(top, (float(presence[0]), z))
        if found[0] and (best is None or (presence[0], area) > (best[1], best[2])):
            best = (z, float(presence[0]), area, logits[0] > 0)
    log.info("text %r: searched slices %s, start %s", q.text, zs, None if best is None else best[0])
    if best is None:
        return None, top[0], top[1]
    z, presence, _, mask = best
    ys, xs = np.nonzero(mask)
    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    return pred.predict(box=box, slice_index=z), presence, z


def _stack_volume(pred, image, objects, queries, stacked) -> Prediction:
    shape = image.shape
    logits = np.full((len(objects), *shape), EMPTY_LOGIT, np.float32)
    ranges, presence, found, starts = [], [], [], []
    for i, (p, pres, z) in enumerate(objects):
        presence.append(pres)
        found.append(p is not None)
        starts.append(z)
        if p is not None:
            logits[i] = p.logits
            ranges.append(p.slice_ranges[0])
        else:
            ranges.append((z, z - 1))
    pres_arr, found_arr = np.asarray(presence, np.float32), np.asarray(found)
    extra = {"start_slice": starts}
    res = _result(pred, image, logits, pres_arr, found_arr, queries, stacked, extra)
    return replace(res, slice_ranges=tuple(ranges))
