"""MONAI Label models backed by the server's models, and running them.

- ``deepgrow`` (type ``deepgrow``, dimension 2): the promptable model on the slice of the
  clicks; the result volume holds the mask on that slice only (what 3D Slicer expects of a
  2D deepgrow model: it replaces just that slice).
- ``deepedit`` (type ``deepedit``, dimension 3): the same clicks, then the object is
  propagated through the volume (:meth:`medseg.Predictor.predict` with ``slice_index``);
  offered when the model takes boxes (propagation prompts each next slice with a box).
- ``segmentation`` (type ``segmentation``): the ``medseg auto`` model of ``--auto-model``,
  every class, no clicks.

Text prompts (``params.text``, models that take them: ``"text": true`` and the known phrases
in ``text_labels`` of their ``/info/`` entry) go to :meth:`medseg.Predictor.predict` as
``text=`` (one phrase) or ``texts=`` (several; one label each, values 1..n): ``deepgrow``
segments the slice of the clicks (or ``params.slice``; a 2D image: the image), ``deepedit``
the whole volume (from that slice, else the slice where the target is found). Clicks of one
object go with one phrase and correct its mask. The Predictor's ``PromptError`` (unknown
phrase, clicks with several phrases, a box with text, ...) answers 422 with its message,
as every prompt error of the server does.

The model is 2D (it segments slices), so an object's clicks are used on one slice: the slice
of its last foreground click (3D Slicer's "current point"); clicks on other slices are left
out and counted in the result's ``ignored_clicks``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from medseg.errors import InputError, PromptError
from medseg.io.image import Image
from medseg.server.datastore import NotFound
from medseg.server.monailabel.params import ClickObject, InferParams
from medseg.server.sessions import PooledPredictor
from medseg.server.state import ServerState
from medseg.server.views import view_axes

__all__ = ["MODEL_TYPES", "model_infos", "app_labels", "run_model", "text_labels", "Result"]

#: MONAI Label model name -> type.
MODEL_TYPES = {"deepgrow": "deepgrow", "deepedit": "deepedit", "segmentation": "segmentation"}
_IDENTITY = {"depth": 0, "rows": 1, "cols": 2, "flip_rows": False, "flip_cols": False}
_DEFAULT_LABEL = "object"

Result = tuple[np.ndarray, dict[str, int], dict[str, Any]]


def app_labels(state: ServerState) -> list[str]:
    """Label names offered to viewers: the automatic model's classes, else ``object``."""
    if state.auto is not None:
        return [state.auto.label_names[v] for v in sorted(state.auto.label_names)]
    return [_DEFAULT_LABEL]


def text_labels(state: ServerState) -> list[str] | None:
    """The target names the server's promptable model segments from text (sorted), or None
    when it takes no text prompts."""
    from medseg.inference.text import accepts_text
    from medseg.prompts.text import list_targets

    if state.model is None or not accepts_text(state.model):
        return None
    return [t.name for t in list_targets()]


def _with_text(entry: dict[str, Any], phrases: list[str] | None) -> dict[str, Any]:
    """``entry`` with ``text`` (bool) and, for a model taking text, ``text_labels``."""
    if phrases is None:
        return {**entry, "text": False}
    description = f"{entry['description']}; or name targets with params.text"
    return {**entry, "description": description, "text": True, "text_labels": phrases}


def model_infos(state: ServerState) -> dict[str, dict[str, Any]]:
    """``/info/`` ``models``: name -> type, labels, dimension, description, config, and
    for the promptable models ``text`` (whether ``params.text`` is taken) and
    ``text_labels`` (the phrases it knows)."""
    info = state.model_info()  # raises ModelError (503) while the model is loading
    phrases = text_labels(state)
    kinds = set(info["prompt_kinds"])
    labels = app_labels(state)
    out: dict[str, dict[str, Any]] = {}
    if "points" in kinds:
        out["deepgrow"] = _with_text({
            "type": "deepgrow", "labels": [], "dimension": 2, "config": {},
            "description": f"{info['name']}: clicks on one slice segment the object there",
        }, phrases)  # fmt: skip
        if "box" in kinds:
            out["deepedit"] = _with_text({
                "type": "deepedit", "dimension": 3, "config": {},
                "labels": {name: i for i, name in enumerate(labels, start=1)},
                "description": f"{info['name']}: clicks on one slice per label, propagated "
                               "through the volume",
            }, phrases)  # fmt: skip
    if state.auto is not None:
        out["segmentation"] = {
            "type": "segmentation", "dimension": 3, "config": {},
            "labels": {state.auto.label_names[v]: v for v in sorted(state.auto.label_names)},
            "description": f"medseg auto model {state.auto.name}: every class, no clicks",
        }  # fmt: skip
    return out


def _predictor(state: ServerState, image_id: str, image: Image) -> PooledPredictor:
    """A pooled predictor whose image is in the array order of the stored image (clicks
    are voxel indices of that array): the axial view when it is that order, else its own."""
    if image.ndim == 2 or view_axes(image, "axial") == _IDENTITY:
        return state.predictor(image_id, "axial")
    return state.require_pool().get(image_id, "index", lambda: image)


def _check_prompts(obj: ClickObject, shape: tuple[int, ...]) -> None:
    """Clicks and box of ``obj`` inside an image of ``shape`` (``(Z, Y, X)`` or ``(H, W)``);
    raises ``PromptError`` naming the first one outside."""
    bounds = np.array(shape[::-1] if len(shape) == 3 else (*shape[::-1], 1))
    for what, clicks in (("foreground", obj.foreground), ("background", obj.background)):
        bad = (clicks < 0) | (clicks >= bounds)
        if bad.any():
            click = clicks[np.argmax(bad.any(axis=1))].tolist()
            raise PromptError(f"{obj.name} {what} click {click} is outside the image "
                              f"(i < {bounds[0]}, j < {bounds[1]}, k < {bounds[2]})")  # fmt: skip
    if obj.box is not None:
        x0, y0, x1, y1 = obj.box
        z0, z1 = obj.box_z or (0, 0)
        if x0 >= bounds[0] or y0 >= bounds[1] or x1 < 0 or y1 < 0 or z0 >= bounds[2] or z1 < 0:
            raise PromptError(f"{obj.name} roi {[*obj.box, *(obj.box_z or ())]} does not "
                              f"overlap the image (i < {bounds[0]}, j < {bounds[1]}, "
                              f"k < {bounds[2]})")  # fmt: skip


def _slice_of(obj: ClickObject, depth: int) -> int:
    """The slice ``obj`` is segmented on: its last foreground click's, else ``slice``,
    else the middle of the box's slice range; raises ``PromptError`` without any."""
    if len(obj.foreground):
        return int(obj.foreground[-1, 2])
    if obj.slice is not None:
        z = obj.slice
    elif obj.box_z is not None:
        z = (max(obj.box_z[0], 0) + min(obj.box_z[1], depth - 1)) // 2
    elif depth == 1:
        z = 0
    else:
        raise PromptError(f"{obj.name}: a roi [i0, j0, i1, j1] on a volume needs a slice: "
                          "add a click, params.slice or k0, k1 to the roi")  # fmt: skip
    if not 0 <= z < depth:
        raise PromptError(f"{obj.name}: slice {z} is outside the volume (0..{depth - 1})")
    return z


def _prompts(obj: ClickObject, z: int, propagate: bool) -> tuple[dict[str, Any], int]:
    """(keyword prompts of :meth:`medseg.Predictor.predict` on slice ``z``, clicks left out
    because they lie on other slices)."""
    fg = obj.foreground[obj.foreground[:, 2] == z]
    bg = obj.background[obj.background[:, 2] == z]
    ignored = len(obj.foreground) - len(fg) + len(obj.background) - len(bg)
    kwargs: dict[str, Any] = {}
    if len(fg) + len(bg):
        kwargs["points"] = [(float(x), float(y)) for x, y, _ in np.concatenate([fg, bg])]
        kwargs["point_labels"] = [1] * len(fg) + [0] * len(bg)
    if obj.box is not None and propagate and obj.box_z is not None:
        x0, y0, x1, y1 = obj.box
        kwargs["box3d"] = (x0, y0, obj.box_z[0], x1, y1, obj.box_z[1])
    elif obj.box is not None:
        kwargs["box"] = obj.box
    return kwargs, ignored


def _segment(pooled: PooledPredictor, obj: ClickObject, propagate: bool) -> tuple[Any, int, int]:
    """(mask of the image's shape, slice used, clicks left out) of one object."""
    with pooled.lock:
        predictor = pooled.predictor
        image = predictor.image
        depth = 1 if image.ndim == 2 else int(image.shape[0])
        z = _slice_of(obj, depth)
        kwargs, ignored = _prompts(obj, z, propagate)
        if image.ndim == 2:
            return predictor.predict(**kwargs).mask, 0, ignored
        pred = predictor.predict(slice_index=z, propagate=propagate, **kwargs)
    if propagate:
        return pred.mask, z, ignored
    mask = np.zeros(pred.image.shape, bool)  # the stored array's shape (Predictor view frame)
    mask[z] = pred.mask
    return mask, z, ignored


def _interactive(state: ServerState, image_id: str, params: InferParams, propagate: bool) -> Result:
    """The objects of ``params`` segmented on the image: a uint16 label map of the image's
    shape (``(Z, Y, X)`` or ``(H, W)``), ``{name: value}``, extra fields."""
    image = state.datastore.load(image_id)
    objects = [o for o in params.objects if o.prompted]
    if not objects:
        raise PromptError("no foreground click or roi: give params.foreground [[i, j, k], ...] "
                          "(deepgrow), clicks per label name (deepedit) or a roi box")  # fmt: skip
    for obj in params.objects:
        _check_prompts(obj, image.shape)
    pooled = _predictor(state, image_id, image)
    out = np.zeros(image.shape, np.uint16)
    names: dict[str, int] = {}
    extra: dict[str, Any] = {"ignored_clicks": 0, "slices": {}}
    for obj in sorted(objects, key=lambda o: o.value):
        mask, z, ignored = _segment(pooled, obj, propagate)
        out[mask] = obj.value  # a later (higher) label wins where objects overlap
        names[obj.name] = obj.value
        extra["ignored_clicks"] += ignored
        extra["slices"][obj.name] = z
    return out, names, extra


def _text_clicks(params: InferParams) -> ClickObject | None:
    """The object whose clicks (or box) go with the text prompt (None: text alone); raises
    ``InputError`` when several objects have foreground clicks."""
    clicked = [o for o in params.objects if len(o.foreground)]
    if len(clicked) > 1:
        raise InputError("text prompts take the clicks of one object (foreground / "
                         f"background), not of {', '.join(o.name for o in clicked)}")  # fmt: skip
    others = (o for o in params.objects if len(o.background) or o.box is not None)
    return clicked[0] if clicked else next(others, None)


def _text_slice(obj: ClickObject | None, params: InferParams) -> int | None:
    """The slice of a text prompt on a volume: its last foreground click's, else
    ``params.slice``, else its last background click's, else None (the Predictor's)."""
    if obj is not None and len(obj.foreground):
        return int(obj.foreground[-1, 2])
    value = (params.raw or {}).get("slice")  # an int already (parse_params); -1: none
    if isinstance(value, int) and value >= 0:
        return value
    if obj is not None and len(obj.background):
        return int(obj.background[-1, 2])
    return None


def _text_kwargs(pooled: PooledPredictor, params: InferParams, propagate: bool) -> tuple:
    """(keywords of :meth:`medseg.Predictor.predict`, slice or None, clicks left out)."""
    obj = _text_clicks(params)
    z = _text_slice(obj, params)
    kwargs: dict[str, Any] = {}
    ignored = 0
    if obj is not None:
        kwargs, ignored = _prompts(obj, 0 if z is None else z, propagate)
    phrases = list(params.text)
    kwargs.update({"text": phrases[0]} if len(phrases) == 1 else {"texts": phrases})
    if pooled.predictor.image.ndim == 3:
        kwargs.update(slice_index=z, propagate=propagate)
    return kwargs, z, ignored


def _run_text(state: ServerState, image_id: str, params: InferParams, propagate: bool) -> Result:
    """The targets ``params.text`` names on the image: a uint16 label map of the image's
    shape, ``{phrase: value}`` (1..n in order), extra fields (``text``: what the Predictor
    found, with presence)."""
    image = state.datastore.load(image_id)
    for obj in params.objects:
        _check_prompts(obj, image.shape)
    pooled = _predictor(state, image_id, image)
    with pooled.lock:
        kwargs, z, ignored = _text_kwargs(pooled, params, propagate)
        pred = pooled.predictor.predict(**kwargs)  # its PromptError answers 422, as elsewhere
    masks = pred.mask if "texts" in kwargs else pred.mask[None]
    out = np.zeros(image.shape, np.uint16)
    names: dict[str, int] = {}
    for value, (phrase, mask) in enumerate(zip(params.text, masks, strict=True), start=1):
        if image.ndim == 3 and mask.ndim == 2:
            out[z][mask] = value  # deepgrow on a volume: the slice only
        else:
            out[mask] = value  # a later label wins where targets overlap
        names[phrase] = value
    starts = pred.info.get("start_slice", pred.info.get("slice_index", z or 0))
    starts = starts if isinstance(starts, list) else [starts] * len(params.text)
    extra = {"ignored_clicks": ignored, "text": pred.info.get("text", []),
             "slices": dict(zip(params.text, starts, strict=True))}  # fmt: skip
    return out, names, extra


def run_model(state: ServerState, model: str, image_id: str, params: InferParams) -> Result:
    """(label map of the image's shape, ``{name: value}``, extra result fields).

    Raises ``NotFound`` for a model the server does not offer.
    """
    available = model_infos(state)
    if model not in available:
        raise NotFound(f"no model named {model!r}; this server offers: "
                       f"{', '.join(available) or 'none'}")  # fmt: skip
    start = time.perf_counter()
    if params.text and model == "segmentation":
        raise InputError(
            "the segmentation model takes no text prompts; send text to "
            f"{', '.join(m for m in available if m != 'segmentation') or 'none'}"
        )
    if model == "segmentation":
        labels, _ = state.auto_segment(image_id)
        names = {state.auto.label_names[v]: v for v in sorted(state.auto.label_names)}
        out, extra = np.asarray(labels.array), {}
    elif params.text:
        out, names, extra = _run_text(state, image_id, params, model == "deepedit")
    else:
        out, names, extra = _interactive(state, image_id, params, model == "deepedit")
    extra["latencies"] = {"infer": round(time.perf_counter() - start, 4)}
    return out, names, extra
