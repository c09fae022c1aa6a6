"""A trained ``medseg auto`` model folder as the source of automatic masks.

A model folder written by ``medseg auto train`` / ``medseg auto run`` (``plans.json``,
``fold_*/checkpoint_final.pt``, the class names of ``dataset.json`` in the plan) loads as an
:class:`AutoSegmenter`: ``segment(image)`` gives the label map on the image's grid. A
:class:`medseg.Predictor` is *given* one (``Predictor(MODEL_DIR)`` or
``Predictor(model, auto=MODEL_DIR)``) and uses it as the first mask that prompts correct;
``medseg segment --model MODEL_DIR``, ``medseg serve --model/--auto-model MODEL_DIR`` and the
web app's "Auto" button go through the same Predictor.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError, ModelError, PromptError
from medseg.io.image import Image, LabelMap

__all__ = ["AutoSegmenter", "model_folder", "check_model_dir", "load_auto_model"]

log = logging.getLogger(__name__)


def model_folder(name: str | Path) -> Path | None:
    """``name`` as a path when it is meant as a model folder, else None (a registry name).

    A path is an existing file or folder, or text with a ``/`` (or the OS separator) or
    starting with ``.`` or ``~``; registry names are lower-case words like ``litemedsam``.
    """
    text = str(name)
    path = Path(text).expanduser()
    if isinstance(name, Path) or path.exists() or text.startswith((".", "~")):
        return path
    return path if "/" in text or os.sep in text else None


def check_model_dir(path: str | Path) -> Path:
    """``path`` if it is a ``medseg auto`` model folder; else a ``ModelError`` saying why."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"{path}: no such model folder")
    if not path.is_dir():
        raise ModelError(f"{path}: not a folder (give a model name or a medseg auto model folder)")
    if not (path / "plans.json").is_file():
        raise ModelError(
            f"{path}: not a medseg auto model folder (no plans.json; train one with "
            f"`medseg auto run DATA --out {path} --time-budget 30m`)"
        )
    return path


class AutoSegmenter:
    """A ``medseg auto`` model folder loaded for automatic segmentation.

    Args:
        model_dir: folder with ``plans.json`` and ``fold_*/checkpoint_<checkpoint>.pt``.
        config: folds, checkpoint, mirroring, post-processing
            (:class:`medseg.automatic.model.PredictConfig`).

    Attributes:
        label_names: foreground label value -> class name (from ``dataset.json``).
        default_label: the lowest foreground label value.
    """

    def __init__(self, model_dir: str | Path, config: Any = None) -> None:
        from medseg.automatic.model import AutoModel

        self.dir = check_model_dir(model_dir)
        try:
            self.model = AutoModel(self.dir, config)
        except InputError as exc:  # unreadable plans.json
            raise ModelError(f"{self.dir}: {exc}") from exc
        except (OSError, RuntimeError, KeyError, EOFError, pickle.UnpicklingError) as exc:
            raise ModelError(f"{self.dir}: cannot load a checkpoint ({exc})") from exc
        plan = self.model.plan
        names = plan.label_names
        self.label_names = {int(v): names.get(v, f"label {v}") for v in plan.label_values if v}
        if not self.label_names:
            raise ModelError(f"{self.dir}: the plan has no foreground label")
        self.default_label = min(self.label_names)
        log.info("auto model %s: classes %s, folds %s", self.dir, self.label_names, self.folds)

    @property
    def name(self) -> str:
        """The model folder's name."""
        return self.dir.name

    @property
    def folds(self) -> list[str]:
        return list(self.model.folds)

    @property
    def in_channels(self) -> int:
        return self.model.plan.in_channels

    def check_label(self, label: int | None) -> int:
        """``label`` (default :attr:`default_label`) if it is one of the model's classes."""
        if label is None:
            return self.default_label
        integer = isinstance(label, (int, np.integer)) and not isinstance(label, bool)
        if not integer or int(label) not in self.label_names:
            classes = ", ".join(f"{v} ({n})" for v, n in self.label_names.items())
            raise PromptError(f"label {label!r} is not a class of {self.dir}; classes: {classes}")
        return int(label)

    def segment(self, image: Image) -> LabelMap:
        """The label map of ``image`` (2D ``(H, W)`` / 3D ``(Z, Y, X)``, channels last if
        several) on the image's grid, with the class names as ``label_names``."""
        return self.model.predict(image)

    def info(self) -> dict[str, Any]:
        """JSON-serialisable description (folder, classes, folds, configuration)."""
        plan = self.model.plan
        return {
            "name": self.name,
            "path": str(self.dir),
            "configuration": plan.configuration,
            "dims": plan.data_dims,
            "channels": list(plan.channel_names),
            "labels": {str(v): n for v, n in self.label_names.items()},
            "folds": self.folds,
        }


def load_auto_model(model_dir: str | Path, **options: Any) -> AutoSegmenter:
    """:class:`AutoSegmenter` for a model folder; ``options`` are
    :class:`~medseg.automatic.model.PredictConfig` fields (``folds``, ``checkpoint``, ``tta``,
    ``overlap``, ``sw_batch_size``, ``postprocess``, ``device``)."""
    from medseg.automatic.model import PredictConfig

    fields = {f.name for f in dataclasses.fields(PredictConfig)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ModelError(f"unknown auto model option(s) {unknown}; valid options: {sorted(fields)}")
    if options.get("folds") is not None:
        options["folds"] = tuple(str(f) for f in options["folds"])
    return AutoSegmenter(model_dir, PredictConfig(**options))


def resolve_auto(model: Any, auto: Any, options: dict[str, Any]) -> tuple[Any, Any, dict]:
    """``(promptable model, AutoSegmenter or None, remaining options)`` for a Predictor.

    ``model`` may be a model folder (then the promptable model is the registry's
    ``"default"`` and the folder becomes ``auto``); ``auto`` may be an
    :class:`AutoSegmenter` or a folder. Options named like ``PredictConfig`` fields go to the
    automatic model, the others stay for the promptable one.
    """
    from medseg.automatic.model import PredictConfig
    from medseg.models.registry import is_model

    if isinstance(model, str | os.PathLike) and not (isinstance(model, str) and is_model(model)):
        folder = model_folder(model)
        if folder is not None:
            if auto is not None:
                raise ModelError("give the model folder as model= or as auto=, not both")
            model, auto = "default", folder
    if auto is None:
        return model, None, options
    fields = {f.name for f in dataclasses.fields(PredictConfig)}
    auto_options = {k: v for k, v in options.items() if k in fields}
    rest = {k: v for k, v in options.items() if k not in fields}
    if not isinstance(auto, AutoSegmenter):
        auto = load_auto_model(auto, **auto_options)
    elif auto_options:
        raise ModelError(f"options {sorted(auto_options)} need the auto model given as a folder")
    return model, auto, rest
