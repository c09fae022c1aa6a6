"""A trained ``medseg auto`` model as the automatic first mask of promptable segmentation.

A model folder written by ``medseg auto train`` / ``medseg auto run`` (``plans.json``,
``fold_*/checkpoint_final.pt``, the class names of ``dataset.json`` in the plan) is a model
"name" for :func:`medseg.models.create_model`, so ``medseg.Predictor(MODEL_DIR)``,
``medseg segment --model MODEL_DIR`` and ``medseg serve --model MODEL_DIR`` accept it. It
becomes an :class:`AutoThenRefine`:

1. :meth:`medseg.Predictor.set_image` runs the automatic model once on the whole image
   (sliding window, :class:`medseg.inference.sliding_window.AutoModel`) and caches its label
   map (``Predictor.segment_all()``);
2. ``predict()`` without prompts returns the automatic mask of one class: ``label=K``, by
   default the first foreground class (the lowest non-zero label value);
3. ``predict()`` with prompts gives that mask to ``medseg-interactive`` as ``mask_input``
   (unless one is passed), which applies the corrections. On a volume the prompts correct
   their slice (``slice_index``); the other slices keep the automatic mask.

:class:`AutoSegmenter` is the automatic part alone (used by the web app's "Auto" button).
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
from medseg.inference.image_input import model_array
from medseg.io.image import Image, LabelMap
from medseg.models.base import Decoded, PromptableModel
from medseg.prompts.types import PromptSet

__all__ = [
    "AutoSegmenter",
    "AutoThenRefine",
    "model_folder",
    "check_model_dir",
    "load_auto_model",
]

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
            (:class:`medseg.inference.sliding_window.PredictConfig`).

    Attributes:
        label_names: foreground label value -> class name (from ``dataset.json``).
        default_label: the lowest foreground label value.
    """

    def __init__(self, model_dir: str | Path, config: Any = None) -> None:
        from medseg.inference.sliding_window import AutoModel

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


class AutoThenRefine(PromptableModel):
    """The automatic model's mask first, then ``medseg-interactive`` for corrections.

    ``encode``/``decode`` are the refine model's (the :class:`medseg.Predictor` runs
    :attr:`auto` once per image, see the module docstring).
    """

    name = "medseg-auto+interactive"
    prompt_kinds = frozenset({"box", "points", "mask", "scribbles"})
    refines_previous_mask = True
    num_multimask_outputs = 0

    def __init__(self, auto: AutoSegmenter, refine: PromptableModel) -> None:
        missing = self.prompt_kinds - set(refine.prompt_kinds)
        if missing:
            raise ModelError(f"{refine.name} cannot refine masks: it lacks {sorted(missing)}")
        self.auto = auto
        self.refine = refine

    def normalize(self, array: np.ndarray, *, modality: str = "unknown", window: Any = None):
        """The refine model's normalisation (the automatic model normalises as in training)."""
        return self.refine.normalize(array, modality=modality, window=window)

    def encode(self, image: np.ndarray) -> Any:
        return self.refine.encode(image)

    def decode(self, embedding: Any, prompts: PromptSet, *, multimask: bool = False) -> Decoded:
        return self.refine.decode(embedding, prompts, multimask=multimask)

    @staticmethod
    def prompt_array(image: Image) -> np.ndarray:
        """What the refine model sees: gray or RGB; the first channel of other multi-channel
        images (e.g. 4 MR sequences, which the automatic model gets in full)."""
        if image.channels and image.array.shape[-1] not in (1, 3, 4):
            log.info("corrections see channel 0 of the %d channels", image.array.shape[-1])
            return image.array[..., 0]
        return model_array(image)

    def config_dict(self) -> dict[str, Any]:
        return {"name": self.name, "auto": self.auto.info(), "refine": self.refine.config_dict()}


def load_auto_model(
    model_dir: str | Path, *, interactive: dict[str, Any] | None = None, **options: Any
) -> AutoThenRefine:
    """:class:`AutoThenRefine` for a model folder.

    Options named like :class:`~medseg.inference.sliding_window.PredictConfig` fields
    (``folds``, ``checkpoint``, ``tta``, ``overlap``, ``sw_batch_size``, ``postprocess``,
    ``device``) configure the automatic model; the others (e.g. ``num_threads``) and
    ``interactive={...}`` are ``medseg-interactive`` options.
    """
    from medseg.inference.sliding_window import PredictConfig
    from medseg.models.registry import create_model

    fields = {f.name for f in dataclasses.fields(PredictConfig)}
    predict = {k: v for k, v in options.items() if k in fields}
    refine = {k: v for k, v in options.items() if k not in fields} | dict(interactive or {})
    if predict.get("folds") is not None:
        predict["folds"] = tuple(str(f) for f in predict["folds"])
    auto = AutoSegmenter(model_dir, PredictConfig(**predict))
    return AutoThenRefine(auto, create_model("medseg-interactive", **refine))
