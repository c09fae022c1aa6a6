"""Predictor factories for the benchmark: ``medseg.Predictor(name, **options)`` with the
``--threads`` setting given to every model that takes it.

A model takes the thread count as its ``num_threads`` option (a field of its config, e.g.
``LiteMedSAMConfig``, ``InteractiveConfig``; ``auto`` and ``medseg auto`` model folders pass
it on to ``medseg-interactive``). A composite model configures its parts through nested
option dicts instead (``litemedsam+interactive``: ``litemedsam={...}``, ``interactive={...}``):
those are listed in :data:`PART_OPTIONS`. The registry does not publish option schemas, so
whether a model has ``num_threads`` is learnt from the model itself: a factory that rejects
the option (a ``ModelError`` naming it, raised before any weights are loaded) is built again
without it, with a warning, so that the run goes on with the model's own defaults.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from medseg.bench.engine import PredictorFactory, default_factory
from medseg.errors import ModelError

__all__ = ["PART_OPTIONS", "thread_options", "predictor_factory"]

log = logging.getLogger(__name__)

# Composite models: the option names holding one part's options each (see the factories'
# docstrings). Every part gets ``num_threads``.
PART_OPTIONS: dict[str, tuple[str, ...]] = {
    "litemedsam+interactive": ("litemedsam", "interactive"),
}

# build_config: "unknown NAME option(s) [...]"; composites: "unknown option(s) [...]".
_REJECTED = re.compile(r"unknown (?:\S+ )?option\(s\) \[[^\]]*'num_threads'")


def thread_options(name: str, threads: int) -> dict[str, Any]:
    """Model options giving model ``name`` (every part of a composite) ``threads`` torch
    CPU threads: ``{"num_threads": threads}``, or one nested dict per part."""
    parts = PART_OPTIONS.get(name)
    if parts:
        return {part: {"num_threads": threads} for part in parts}
    return {"num_threads": threads}


def predictor_factory(
    threads: int | None = None, model_options: dict[str, dict[str, Any]] | None = None
) -> PredictorFactory:
    """``factory(name)`` building ``medseg.Predictor(name, progress=False, **options)``:
    :func:`thread_options` when ``threads`` is set, updated with ``model_options[name]``
    (``--model-option``). With neither it is
    :func:`~medseg.bench.engine.default_factory` (each model's default settings).

    A model that rejects ``num_threads`` is built without it (warned once per name); a
    model that rejects a ``model_options`` key fails with its own ``ModelError``.
    """
    extra = model_options or {}
    if threads is None and not extra:
        return default_factory
    if threads is not None and int(threads) < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    chosen: dict[str, dict[str, Any]] = {}

    def factory(name: str) -> Any:
        from medseg.inference import Predictor

        base = {} if threads is None else thread_options(name, int(threads))
        options = chosen.get(name, {**base, **extra.get(name, {})})
        try:
            predictor = Predictor(name, progress=False, **options)
        except ModelError as exc:
            if "num_threads" not in options or not _REJECTED.search(str(exc)):
                raise
            log.warning("model %s has no num_threads option: --threads not applied (%s)",
                        name, exc)  # fmt: skip
            options = {k: v for k, v in options.items() if k != "num_threads"}
            predictor = Predictor(name, progress=False, **options)
        if name not in chosen:
            chosen[name] = options
            log.info("model %s: options %s", name, options or "(defaults)")
        return predictor

    return factory
