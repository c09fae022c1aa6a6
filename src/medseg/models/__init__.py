"""Promptable segmentation models and their registry.

``import medseg.models`` is cheap: torch is imported only when a model is created.

>>> from medseg.models import list_models, create_model
>>> "litemedsam" in list_models()
True
"""

from __future__ import annotations

from medseg.models.base import Decoded, PromptableModel
from medseg.models.registry import (
    DEFAULT_MODEL,
    create_model,
    is_model,
    list_models,
    register_model,
)

__all__ = [
    "DEFAULT_MODEL",
    "Decoded",
    "PromptableModel",
    "create_model",
    "is_model",
    "list_models",
    "register_model",
]

# LiteMedSAM with its prompt encoder + mask decoder fine-tuned for clicks (registers itself).
from medseg.models import litemedsam_clicks as _litemedsam_clicks  # noqa: F401
