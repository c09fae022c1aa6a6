"""``ServerState``: everything one app instance owns (no module-level mutable state).

One :class:`~medseg.inference.cache.MemoryBudget` (``ServerConfig.cache_mb``) bounds the
bytes of every cache: decoded images (datastore), predictors and their slice embeddings
(pool), the sessions' remembered logits, image descriptions and the automatic label maps.
The automatic model runs through the one prediction door, ``Predictor(model, auto=...)``
(the pool's ``"auto"`` view of an image), as in the API and the CLI.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import Request

from medseg.errors import ModelError
from medseg.inference.cache import ByteLRU, MemoryBudget
from medseg.inference.view_frame import segmented_image
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
    view_shape,
    window_names,
)

__all__ = ["ServerState", "get_state"]

_DETAILS_KEPT = 64


@dataclass(eq=False)
class ServerState:
    """The datastore, label store, sessions, model and predictor pool of one app; ``auto``
    is the optional automatic model (:class:`medseg.automatic.segmenter.AutoSegmenter`,
    the same one a :class:`medseg.Predictor` is given); ``budget`` bounds the bytes of
    every cache (give the datastore and sessions the same one)."""

    config: ServerConfig
    token: str | None
    datastore: Datastore
    labels: LabelStore
    sessions: SessionManager
    model: Any = None
    pool: PredictorPool | None = None
    warmup_ms: float = 0.0
    auto: Any = None
    budget: MemoryBudget = field(default_factory=MemoryBudget)
    _auto_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._details = ByteLRU(_DETAILS_KEPT, self.budget)

    def attach_model(self, model: Any) -> None:
        """Use the promptable ``model`` for prompts (the automatic model is ``auto``)."""
        self.model = model
        self.pool = PredictorPool(
            model, self.config.max_predictors, self.config.slice_cache, self.budget
        )

    def auto_segment(self, image_id: str) -> tuple[LabelMap, float]:
        """The automatic label map of an image and the time in ms ``Predictor(model,
        auto=...).set_image`` took (0 when the pool had it). Runs one image at a time: the
        model uses every CPU core."""
        if self.auto is None:
            raise NotFound("no automatic model: start medseg serve with --auto-model MODEL_DIR")
        image = self.datastore.load(image_id)
        with self._auto_lock:
            pool = self.require_pool()
            cached = (image_id, "auto") in pool
            pooled = pool.get(image_id, "auto", lambda: image, auto=self.auto)
            with pooled.lock:
                labels = pooled.predictor.segment_all()
        return labels, 0.0 if cached else pooled.embed_ms

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
        cached = self._details.get(entry.id)
        if cached is None:
            cached = _describe(self.datastore.load(entry.id))
            self._details.put(entry.id, cached)
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
        """The pooled predictor of an image's view (created and embedded on first use): the
        model segments the view's slices as the app shows them (the display-frame rule of
        ``medseg.Predictor``, :func:`medseg.inference.view_frame.segmented_image`)."""
        image = self.datastore.load(image_id)
        return self.require_pool().get(image_id, view, lambda: segmented_image(image, view))


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
