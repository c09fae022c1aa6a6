""" "Box then refine": LiteMedSAM for a box alone, ``medseg-interactive`` for everything else.

The first mask of a box comes from LiteMedSAM (strong on compact organs from a box); any
prediction with clicks, scribbles or a previous mask goes to ``medseg-interactive``, which
takes the earlier mask (LiteMedSAM's or its own) as ``mask_input`` and corrects it.
Registered as ``litemedsam+interactive``; the registry's ``default``
(:mod:`medseg.models.registry`), since on datasets no medseg model trained on it beats
``medseg-interactive`` alone at every step, in 2D and in 3D (docs/benchmarks.md).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from medseg.errors import ModelError, PromptError
from medseg.models.base import Decoded, PromptableModel
from medseg.models.registry import register_model
from medseg.prompts.types import PromptSet

__all__ = ["BoxThenRefine", "BoxThenRefineEmbedding", "box_then_refine"]


class BoxThenRefineEmbedding:
    """Both models' embeddings of one image; the refine model's is computed on first use.

    A box alone (and every slice a 3D box propagation visits) needs only LiteMedSAM's
    embedding, so the second encoder runs only on the slices a user corrects.
    """

    def __init__(self, image: np.ndarray, first: Any, refine_model: PromptableModel) -> None:
        self.first = first
        self._image: np.ndarray | None = image
        self._refine_model = refine_model
        self._refine: Any = None
        self._lock = threading.Lock()

    @property
    def refine(self) -> Any:
        """The refine model's embedding (computed once, thread-safe)."""
        with self._lock:
            if self._refine is None:
                self._refine = self._refine_model.encode(self._image)
                self._image = None  # no longer needed: free it
            return self._refine

    @property
    def nbytes(self) -> int:
        held = self._refine if self._refine is not None else self._image
        return int(getattr(self.first, "nbytes", 0)) + int(getattr(held, "nbytes", 0))


class BoxThenRefine(PromptableModel):
    """LiteMedSAM for box-only prompts, ``medseg-interactive`` for every other prompt."""

    name = "litemedsam+interactive"
    prompt_kinds = frozenset({"box", "points", "mask", "scribbles"})
    refines_previous_mask = True
    num_multimask_outputs = 0

    def __init__(self, first: PromptableModel, refine: PromptableModel) -> None:
        self.first = first
        self.refine = refine

    def normalize(self, array: np.ndarray, *, modality: str = "unknown", window: Any = None):
        """Both models share the default normalisation (CT window, uint8 / 255, percentiles)."""
        return self.first.normalize(array, modality=modality, window=window)

    def encode(self, image: np.ndarray) -> BoxThenRefineEmbedding:
        """Embed ``(H, W)`` or ``(H, W, 3)`` in ``[0, 1]`` with LiteMedSAM now and with the
        refine model when a correction first needs it."""
        return BoxThenRefineEmbedding(image, self.first.encode(image), self.refine)

    @staticmethod
    def uses_first(prompts: PromptSet) -> bool:
        """True for a box with no clicks, scribbles or previous mask."""
        return prompts.kinds == frozenset({"box"}) and getattr(prompts, "scribbles", None) is None

    def decode(
        self, embedding: BoxThenRefineEmbedding, prompts: PromptSet, *, multimask: bool = False
    ) -> Decoded:
        if multimask:
            raise PromptError(f"{self.name} has no multimask output")
        if self.uses_first(prompts):
            return self.first.decode(embedding.first, prompts)
        return self.refine.decode(embedding.refine, prompts)

    def text_backbone(self, embedding: BoxThenRefineEmbedding | None) -> tuple[Any, Any] | None:
        """The first model's text backbone (LiteMedSAM and its embedding, ``embedding.first``)
        for the text head; None when the first model has none."""
        backbone = getattr(self.first, "text_backbone", None)
        if backbone is None:
            return None
        return backbone(None if embedding is None else embedding.first)

    def config_dict(self) -> dict[str, Any]:
        return {"name": self.name, "first": self.first.config_dict(),
                "refine": self.refine.config_dict()}  # fmt: skip


_SHARED_OPTIONS = ("num_threads",)  # options of both models, given to both


@register_model("litemedsam+interactive")
def box_then_refine(**overrides: Any) -> BoxThenRefine:
    """Options: ``litemedsam={...}`` and ``interactive={...}`` override each model's config;
    ``num_threads`` goes to both (a nested value wins)."""
    from medseg.models.registry import create_model

    valid = {"litemedsam", "interactive", *_SHARED_OPTIONS}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ModelError(f"unknown option(s) {unknown}; valid: {sorted(valid)}")
    shared = {k: overrides[k] for k in _SHARED_OPTIONS if k in overrides}
    first = create_model("litemedsam", **{**shared, **dict(overrides.get("litemedsam") or {})})
    refine = create_model(
        "medseg-interactive", **{**shared, **dict(overrides.get("interactive") or {})}
    )
    return BoxThenRefine(first, refine)
