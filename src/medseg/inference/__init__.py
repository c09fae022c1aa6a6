"""Inference: the promptable ``Predictor`` (with 3D propagation) and, beside it, sliding-window
inference for automatic models (``medseg.automatic.model``).

Imports are lazy so that importing one part does not load the others (or torch).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Predictor", "Prediction", "PropagationConfig"]

_LAZY = {
    "Predictor": "medseg.inference.predictor",
    "Prediction": "medseg.inference.result",
    "PropagationConfig": "medseg.inference.propagation",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medseg.inference' has no attribute {name!r}")
