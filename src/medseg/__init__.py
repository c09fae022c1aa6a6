"""medseg: segment anything in medical images on a laptop CPU.

The top-level namespace is small and imports lazily, so ``import medseg`` is fast and
does not pull in torch until a model is used. The subpackages (``medseg.io``,
``medseg.metrics``, ``medseg.inference``, ...) are attributes too: ``medseg.io.Image``
works right after ``import medseg`` and imports ``medseg.io`` on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from medseg._version import __version__

__all__ = ["__version__", "Image", "LabelMap", "load", "save", "Predictor", "list_models"]

_LAZY = {
    "Image": ("medseg.io", "Image"),
    "LabelMap": ("medseg.io", "LabelMap"),
    "load": ("medseg.io", "load"),
    "save": ("medseg.io", "save"),
    "Predictor": ("medseg.inference", "Predictor"),
    "list_models": ("medseg.models", "list_models"),
}

#: Public subpackages and modules, imported on first attribute access (not by ``*``).
_SUBMODULES = (
    "bench",
    "cli",
    "data",
    "errors",
    "inference",
    "io",
    "metrics",
    "models",
    "prompts",
    "server",
    "training",
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in _SUBMODULES:
        return importlib.import_module(f"medseg.{name}")  # also sets medseg.<name>
    raise AttributeError(f"module 'medseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBMODULES})
