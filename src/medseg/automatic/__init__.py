"""The trained automatic segmentation model, in one home.

Everything a trained model folder needs at prediction time lives here; training
(``medseg.training``) writes these artifacts and imports this package, never the reverse.

- ``plan``: the JSON plan (spacing, patch, normalisation, network) written by planning;
- ``topology`` / ``network``: the DynUNet the plan describes;
- ``preprocess`` / ``postprocess``: image resampling + normalisation, kept components;
- ``model``: ``AutoModel`` (one fold's weights) and sliding-window logits;
- ``segmenter``: ``AutoSegmenter``, the fold ensemble a user loads (``load_auto_model``);
- ``predict``: ``predict_folder`` over an nnU-Net ``imagesTs`` style folder.

Imports are lazy so that ``import medseg.automatic`` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AutoModel",
    "AutoSegmenter",
    "Plan",
    "PredictConfig",
    "load_auto_model",
    "load_plan",
    "predict_folder",
]

_LAZY = {
    "AutoModel": "medseg.automatic.model",
    "PredictConfig": "medseg.automatic.model",
    "AutoSegmenter": "medseg.automatic.segmenter",
    "load_auto_model": "medseg.automatic.segmenter",
    "Plan": "medseg.automatic.plan",
    "load_plan": "medseg.automatic.plan",
    "predict_folder": "medseg.automatic.predict",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medseg.automatic' has no attribute {name!r}")
