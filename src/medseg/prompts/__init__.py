"""Prompts for promptable segmentation: boxes, points, mask inputs, and their validation.

``medseg.prompts.simulation`` (interaction simulator) lives beside this module and is
imported on its own.
"""

from __future__ import annotations

from medseg.prompts.types import (
    PROMPT_KINDS,
    PromptSet,
    box_from_mask,
    validate_box,
    validate_box3d,
    validate_points,
    validate_slice_index,
)

__all__ = [
    "PROMPT_KINDS",
    "PromptSet",
    "box_from_mask",
    "validate_box",
    "validate_box3d",
    "validate_points",
    "validate_slice_index",
]
