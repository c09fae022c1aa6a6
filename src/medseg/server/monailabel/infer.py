"""MONAI Label models backed by the server's models, and running them.

- ``deepgrow`` (type ``deepgrow``, dimension 2): the promptable model on the slice of the
  clicks; the result volume holds the mask on that slice only (what 3D Slicer expects of a
  2D deepgrow model: it replaces just that slice).
- ``deepedit`` (type ``deepedit``, dimension 3): the same clicks, then the object is
  propagated through the volume (:meth:`medseg.Predictor.predict` with ``slice_index``);
  offered when the model takes boxes (propagation prompts each next slice with a box).
- ``segmentation`` (type ``segmentation``): the ``medseg auto`` model of ``--auto-model``,
  every class, no clicks.

The model is 2D (it segments slices), so an object's clicks are used on one slice: the slice
of its last foreground click (3D Slicer's "current point"); clicks on other slices are left
out and counted in the result's ``ignored_clicks``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from medseg.errors import PromptError
from medseg.io.image import Image
from medseg.server.datastore import NotFound
from medseg.server.monailabel.params import ClickObject, InferParams
from medseg.server.sessions import PooledPredictor
from medseg.server.state import ServerState
from medseg.server.views import view_axes

__all__ = ["MODEL_TYPES", "model_infos", "app_labels", "run_model", "Result"]

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


def model_infos(state: ServerState) -> dict[str, dict[str, Any]]:
    """``/info/`` ``models``: name -> type, labels, dimension, description, config."""
    info = state.model_info()  # raises ModelError (503) while the model is loading
    kinds = set(info["prompt_kinds"])
    labels = app_labels(state)
    out: dict[str, dict[str, Any]] = {}
    if "points" in kinds:
        out["deepgrow"] = {
            "type": "deepgrow", "labels": [], "dimension": 2, "config": {},
            "description": f"{info['name']}: clicks on one slice segment the object there",
        }  # fmt: skip
        if "box" in kinds:
            out["deepedit"] = {
                "type": "deepedit", "dimension": 3, "config": {},
                "labels": {name: i for i, name in enumerate(labels, start=1)},
                "description": f"{info['name']}: clicks on one slice per label, propagated "
                               "through the volume",
            }  # fmt: skip
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
    mask = np.zeros(image.shape, bool)
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


def run_model(state: ServerState, model: str, image_id: str, params: InferParams) -> Result:
    """(label map of the image's shape, ``{name: value}``, extra result fields).

    Raises ``NotFound`` for a model the server does not offer.
    """
    available = model_infos(state)
    if model not in available:
        raise NotFound(f"no model named {model!r}; this server offers: "
                       f"{', '.join(available) or 'none'}")  # fmt: skip
    start = time.perf_counter()
    if model == "segmentation":
        labels, _ = state.auto_segment(image_id)
        names = {state.auto.label_names[v]: v for v in sorted(state.auto.label_names)}
        out, extra = np.asarray(labels.array), {}
    else:
        out, names, extra = _interactive(state, image_id, params, model == "deepedit")
    extra["latencies"] = {"infer": round(time.perf_counter() - start, 4)}
    return out, names, extra
