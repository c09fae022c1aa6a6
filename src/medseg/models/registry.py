"""Model registry in the style of ``timm``: ``register_model``, ``create_model``, ``list_models``.

A model is registered by decorating a factory ``fn(**overrides) -> PromptableModel``::

    @register_model("my-model")
    def my_model(**overrides):
        return MyModel(MyConfig(**overrides))

Built-in models live in modules listed in ``_BUILTIN_MODULES``; they are imported on the
first registry look-up (cheap: they import torch only when a model is created).

A name that is not registered but is a path (``runs/x``, ``./model``, an existing folder) is
the folder of a trained ``medseg auto`` model: :func:`create_model` loads it as an automatic
first mask corrected by ``medseg-interactive`` (:mod:`medseg.models.auto_model`).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable
from typing import Any, TypeVar

from medseg.errors import ModelError

__all__ = ["register_model", "create_model", "list_models", "is_model", "build_config"]

Factory = Callable[..., Any]
F = TypeVar("F", bound=Factory)
T = TypeVar("T")

# Name -> factory. The registry is process-wide by design (like timm's): registering is
# the extension point for new models; nothing else is stored here.
_REGISTRY: dict[str, Factory] = {}
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
    """Sorted names of every registered model."""
    _load_builtins()
    return sorted(_REGISTRY)


def is_model(name: str) -> bool:
    """True when ``name`` is a registered model."""
    return name in list_models()


def create_model(name: str | os.PathLike[str], **overrides: Any) -> Any:
    """Build the model registered as ``name``; ``overrides`` replace config defaults.

    ``name`` may also be the folder of a ``medseg auto`` model (see the module docstring;
    options: :func:`medseg.models.auto_model.load_auto_model`). Raises ``ModelError`` for an
    unknown name (listing the available ones), an unusable model folder or an unknown
    override.
    """
    from medseg.models.auto_model import load_auto_model, model_folder

    available = list_models()
    key = os.fspath(name)
    if key in _REGISTRY and not isinstance(name, os.PathLike):
        return _REGISTRY[key](**overrides)
    folder = model_folder(name)
    if folder is not None:
        return load_auto_model(folder, **overrides)
    raise ModelError(
        f"unknown model {key!r}; available models: {', '.join(available)}, or the folder of "
        "a medseg auto model (with plans.json)"
    )


def build_config(name: str, config_cls: type[T], overrides: dict[str, Any]) -> T:
    """``config_cls(**overrides)`` for model ``name``, with a ``ModelError`` listing the valid
    options when an override is not a field of the (dataclass) config."""
    fields = {f.name for f in dataclasses.fields(config_cls)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ModelError(f"unknown {name} option(s) {unknown}; valid options: {sorted(fields)}")
    return config_cls(**overrides)
