"""``ServerState``: everything one app instance owns (no module-level mutable state)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import Request

from medseg.errors import ModelError
from medseg.io.image import Image, LabelMap
from medseg.io.intensity import CT_WINDOWS
from medseg.server.config import ServerConfig
from medseg.server.datastore import Datastore, ImageEntry, NotFound
from medseg.server.labelstore import LabelStore
from medseg.server.segment import tool_support
from medseg.server.sessions import PredictorPool, SessionManager
from medseg.server.views import (
    VIEWS,
    auto_window,
    default_window,
    view_axes,
    view_image,
    view_shape,
    window_names,
)

__all__ = ["ServerState", "get_state"]

_DETAILS_KEPT = 64
_AUTO_KEPT = 4  # automatic label maps kept (LRU, one per image)


@dataclass(eq=False)
class ServerState:
    """The datastore, label store, sessions, model and predictor pool of one app; ``auto``
    is the optional automatic model (:class:`medseg.automatic.segmenter.AutoSegmenter`,
    the same one a :class:`medseg.Predictor` is given)."""

    config: ServerConfig
    token: str | None
    datastore: Datastore
    labels: LabelStore
    sessions: SessionManager
    model: Any = None
    pool: PredictorPool | None = None
    warmup_ms: float = 0.0
    auto: Any = None
    _details: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    _auto_maps: OrderedDict[str, LabelMap] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _auto_lock: threading.Lock = field(default_factory=threading.Lock)

    def attach_model(self, model: Any) -> None:
        """Use the promptable ``model`` for prompts (the automatic model is ``auto``)."""
        self.model = model
        self.pool = PredictorPool(model, self.config.max_predictors, self.config.slice_cache)

    def auto_segment(self, image_id: str) -> tuple[LabelMap, float]:
        """The automatic label map of an image (cached) and the model time in ms (0 when
        cached). Runs one image at a time: the model uses every CPU core."""
        if self.auto is None:
            raise NotFound("no automatic model: start medseg serve with --auto-model MODEL_DIR")
        with self._auto_lock:
            cached = self._auto_maps.get(image_id)
            if cached is not None:
                self._auto_maps.move_to_end(image_id)
                return cached, 0.0
            start = time.perf_counter()
            labels = self.auto.segment(self.datastore.load(image_id))
            self._auto_maps[image_id] = labels
            while len(self._auto_maps) > _AUTO_KEPT:
                self._auto_maps.popitem(last=False)
        return labels, (time.perf_counter() - start) * 1000

    def auto_info(self) -> dict[str, Any] | None:
        """The automatic model's description for ``/api/info`` (None without one)."""
        return None if self.auto is None else self.auto.info()

    def require_pool(self) -> PredictorPool:
        if self.pool is None:
            raise ModelError("the model is not loaded yet")
        return self.pool

    # ---- descriptions ------------------------------------------------------------------
    def summary(self, entry: ImageEntry) -> dict[str, Any]:
        return {**entry.to_dict(), "versions": len(self.labels.versions(entry))}

    def detail(self, entry: ImageEntry) -> dict[str, Any]:
        """Image metadata for the viewer (cached per image; the version count is fresh)."""
        with self._lock:
            cached = self._details.get(entry.id)
        if cached is None:
            cached = _describe(self.datastore.load(entry.id))
            with self._lock:
                self._details[entry.id] = cached
                while len(self._details) > _DETAILS_KEPT:
                    self._details.popitem(last=False)
        out = {**self.summary(entry), **cached}
        out["modality"] = out["modality"] or cached["modality"]
        return out

    def model_info(self) -> dict[str, Any]:
        model = self.model
        if model is None:
            raise ModelError("the model is not loaded yet")
        return {
            "name": model.name,
            "prompt_kinds": sorted(model.prompt_kinds),
            "multimask": model.num_multimask_outputs > 0,
            "refine_default": bool(getattr(model, "refines_previous_mask", False)),
            "tools": tool_support(model),
            "config": model.config_dict(),
        }

    def predictor(self, image_id: str, view: str) -> Any:
        """The pooled predictor of an image's view (created and embedded on first use)."""
        image = self.datastore.load(image_id)
        return self.require_pool().get(image_id, view, lambda: view_image(image, view))


def _describe(image: Image) -> dict[str, Any]:
    views = list(VIEWS) if image.ndim == 3 else ["axial"]
    shapes = {v: [int(s) for s in view_shape(image, v)] for v in views}
    arr = image.array
    finite = arr if not np.issubdtype(arr.dtype, np.floating) else arr[np.isfinite(arr)]
    return {
        "ndim": image.ndim,
        "shape": list(image.shape),
        "spacing": list(image.spacing),
        "rgb": bool(image.is_rgb),
        "dtype": str(arr.dtype),
        "modality": image.modality,
        "views": views,
        "view_shapes": shapes,
        "view_axes": {v: view_axes(image, v) for v in views},
        "windows": window_names(image),
        "default_window": default_window(image),
        "auto_window": list(auto_window(image)),
        "window_presets": _presets(image),
        "value_range": [float(finite.min()), float(finite.max())] if finite.size else [0.0, 0.0],
    }


def _presets(image: Image) -> dict[str, list[float]]:
    """``{name: [level, width]}`` of every window offered for ``image``."""
    out: dict[str, list[float]] = {}
    for name in window_names(image):
        if name in CT_WINDOWS:
            out[name] = [CT_WINDOWS[name].center, CT_WINDOWS[name].width]
        elif name == "auto":
            out[name] = list(auto_window(image))
    return out


def get_state(request: Request) -> ServerState:
    """FastAPI dependency: the state of the app serving ``request``."""
    return request.app.state.medseg
