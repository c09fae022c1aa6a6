"""Model registry in the style of ``timm``: ``register_model``, ``create_model``, ``list_models``.

A model is registered by decorating a factory ``fn(**overrides) -> PromptableModel``::

    @register_model("my-model")
    def my_model(**overrides):
        return MyModel(MyConfig(**overrides))

Built-in models live in modules listed in ``_BUILTIN_MODULES``; they are imported on the
first registry look-up (cheap: they import torch only when a model is created).

``"default"`` names the best registered model on held-out data (an alias registered by the
module that defines it). Trained ``medseg auto`` model folders are not registry models: they
are automatic models given to :class:`medseg.Predictor` (:mod:`medseg.automatic`).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from medseg.errors import ModelError

__all__ = [
    "register_model",
    "create_model",
    "list_models",
    "is_model",
    "build_config",
    "DEFAULT_MODEL",
]

Factory = Callable[..., Any]
F = TypeVar("F", bound=Factory)
T = TypeVar("T")

# Name -> factory. The registry is process-wide by design (like timm's): registering is
# the extension point for new models; nothing else is stored here.
_REGISTRY: dict[str, Factory] = {}
#: What ``"default"`` (``Predictor()``, ``medseg segment``, ``medseg serve``) resolves to: the
#: best model on datasets no medseg model trained on, for boxes, clicks and 3D propagation
#: (docs/benchmarks.md, "Unseen datasets" and "3D"): LiteMedSAM for a box, medseg-interactive
#: for corrections.
DEFAULT_MODEL = "litemedsam+interactive"
_ALIASES = ("default",)
_BUILTIN_MODULES = (
    "medseg.models.litemedsam",
    "medseg.models.interactive",
    "medseg.models.interactive_auto",
)


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def register_model(name: str) -> Callable[[F], F]:
    """Decorator registering ``factory`` under ``name`` (lower-case, unique)."""
    if not name or name != name.lower() or " " in name:
        raise ModelError(f"model names must be non-empty, lower-case, without spaces: {name!r}")
    if name in (*_ALIASES, "auto"):
        raise ModelError(f"{name!r} is an alias of the registry, not a model name")

    def decorator(factory: F) -> F:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not factory:
            same = (existing.__module__, existing.__qualname__) == (
                factory.__module__,
                factory.__qualname__,
            )
            if not same:  # a module re-import registers the same factory again: fine
                raise ModelError(f"model {name!r} is already registered by {existing!r}")
        _REGISTRY[name] = factory
        return factory

    return decorator


def list_models() -> list[str]:
    """Sorted names of every registered model (with the ``default`` alias)."""
    _load_builtins()
    return sorted([*_REGISTRY, *_ALIASES])


def is_model(name: str) -> bool:
    """True when ``name`` is a registered model."""
    return name in list_models()


def create_model(name: str, **overrides: Any) -> Any:
    """Build the model registered as ``name``; ``overrides`` replace config defaults.

    ``"default"`` is the best registered model on held-out data (``DEFAULT_MODEL``); the
    old alias ``"auto"`` still works for one release, with a deprecation warning. Raises
    ``ModelError`` for an unknown name (listing the available ones) or an unknown override.
    A ``medseg auto`` model folder is not a promptable model: give it to
    :class:`medseg.Predictor` (``Predictor(MODEL_DIR)`` or ``auto=MODEL_DIR``).
    """
    available = list_models()
    key = os.fspath(name)
    if key == "auto":
        warnings.warn(
            'model name "auto" is deprecated: it names "medseg-interactive" (use that name); '
            '"default" is now the best model, "litemedsam+interactive"',
            DeprecationWarning,
            stacklevel=2,
        )
        key = "medseg-interactive"
    if key == "default":
        key = DEFAULT_MODEL
    if key in _REGISTRY and not isinstance(name, os.PathLike):
        return _REGISTRY[key](**overrides)
    raise ModelError(
        f"unknown model {key!r}; available models: {', '.join(available)}, or the folder of "
        "a medseg auto model (with plans.json) given to medseg.Predictor"
    )


def build_config(name: str, config_cls: type[T], overrides: dict[str, Any]) -> T:
    """``config_cls(**overrides)`` for model ``name``, with a ``ModelError`` listing the valid
    options when an override is not a field of the (dataclass) config."""
    fields = {f.name for f in dataclasses.fields(config_cls)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ModelError(f"unknown {name} option(s) {unknown}; valid options: {sorted(fields)}")
    return config_cls(**overrides)
