"""The interface every promptable model implements, so :class:`medseg.Predictor` stays
model-agnostic.

A model works on one 2D image at a time (3D is handled by the Predictor, slice by slice):

1. :meth:`PromptableModel.normalize` maps raw intensities of a whole image or volume to
   ``[0, 1]`` (done once per image, so percentiles are volume-wide);
2. :meth:`PromptableModel.encode` turns one normalised 2D image into an embedding (the
   expensive step, cached by the Predictor);
3. :meth:`PromptableModel.decode` turns an embedding plus prompts into mask logits at the
   image's resolution (the cheap step, run per prompt).

``prompt_kinds`` declares which prompt kinds (:data:`medseg.prompts.PROMPT_KINDS`) the model
accepts; the Predictor rejects the others with a ``PromptError`` before calling it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from medseg.prompts.types import PromptSet

__all__ = ["Decoded", "PromptableModel"]


@dataclass(frozen=True, eq=False)
class Decoded:
    """Decoder output for ``N`` objects with ``K`` candidate masks each.

    Attributes:
        logits: ``(N, K, H, W)`` float32 mask logits at the image's resolution
            (foreground where ``> 0``).
        scores: ``(N, K)`` float32 predicted mask quality (SAM: predicted IoU).
    """

    logits: np.ndarray
    scores: np.ndarray


class PromptableModel(ABC):
    """A promptable 2D segmentation model (see the module docstring for the protocol)."""

    #: Registry name, e.g. ``"litemedsam"``.
    name: ClassVar[str] = ""
    #: Prompt kinds the model accepts, a subset of ``medseg.prompts.PROMPT_KINDS``.
    prompt_kinds: ClassVar[frozenset[str]] = frozenset()
    #: Number of candidate masks ``decode(..., multimask=True)`` returns (0: unsupported).
    num_multimask_outputs: ClassVar[int] = 0
    #: Whether corrections should send the previous mask as ``mask_input`` (the model was
    #: trained for it); user interfaces use it as their default.
    refines_previous_mask: ClassVar[bool] = False

    def normalize(
        self, array: np.ndarray, *, modality: str = "unknown", window: Any = None
    ) -> np.ndarray:
        """Map raw intensities (any shape) to float32 ``[0, 1]``.

        Default: CT gets a CT window (``soft_tissue`` unless ``window`` names another one or
        is a :class:`medseg.io.intensity.CTWindow`), uint8 data is divided by 255, anything
        else is clipped to its 0.5–99.5 percentiles (see
        :func:`medseg.io.intensity.display_window`). Raises ``InputError`` on NaN/inf.
        """
        from medseg.io.intensity import display_window

        return display_window(array, modality=modality, window=window)

    @abstractmethod
    def encode(self, image: np.ndarray) -> Any:
        """Embed one normalised 2D image: ``(H, W)`` gray or ``(H, W, 3)`` RGB, float ``[0, 1]``.

        Returns an opaque embedding that :meth:`decode` accepts.
        """

    @abstractmethod
    def decode(self, embedding: Any, prompts: PromptSet, *, multimask: bool = False) -> Decoded:
        """Predict masks for the prompts of ``N`` objects on the embedded image.

        ``multimask=False`` gives ``K = 1`` mask per object, ``True`` gives
        ``K = num_multimask_outputs``.
        """

    def config_dict(self) -> dict[str, Any]:
        """The model's configuration as a JSON-serialisable dict (for logs and reports)."""
        return {"name": self.name}
