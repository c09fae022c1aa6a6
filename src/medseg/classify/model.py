"""A trained classifier: configuration, network, ``predict_proba``, save/load of a model folder.

A model folder holds ``classifier.json`` (the :class:`ClassifierConfig`) and ``weights.pt``
(the network's state dict).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError, ModelError

__all__ = [
    "ClassifierConfig",
    "build_classifier_net",
    "Classifier",
    "load",
    "CONFIG_FILE",
    "WEIGHTS_FILE",
]

log = logging.getLogger(__name__)

CONFIG_FILE = "classifier.json"
WEIGHTS_FILE = "weights.pt"
_IMAGENET_LITE = (0.5, 0.5)  # EfficientNet-Lite: (x - 0.5) / 0.5 (TF-Lite 127/128 convention)


@dataclass(frozen=True)
class ClassifierConfig:
    """What a model folder needs to rebuild the network and read new images.

    Attributes:
        model: network name (see ``medseg.classify.networks.NETWORKS``).
        task: ``binary``, ``multi-class``, ``ordinal`` or ``multi-label``.
        classes: class names in output order.
        spatial_dims: 2 (images ``(C, H, W)``) or 3 (volumes ``(C, Z, Y, X)``).
        in_channels: C.
        data_size: edge length of the training images (files are resized to it first).
        input_size: edge length the network sees (images are interpolated to it).
        mean, std: intensity normalisation after scaling to ``[0, 1]``.
        tta: average the probabilities over flips at prediction time.
        feature_pool: ``tinyvit`` only: how the frozen embedding is pooled
            (``medseg.classify.features.POOLS``).
        feature_slices: ``tinyvit`` only: slices per axis encoded from a 3D volume.
        feature_dim: ``tinyvit`` only: length of the head's input vector.
        head_hidden: ``tinyvit`` only: hidden units of the head (0: linear).
    """

    model: str
    task: str
    classes: tuple[str, ...]
    spatial_dims: int
    in_channels: int
    data_size: int
    input_size: int
    mean: float = 0.5
    std: float = 0.5
    tta: bool = False
    feature_pool: str = "gap"
    feature_slices: int = 1
    feature_dim: int = 0
    head_hidden: int = 0

    @property
    def num_outputs(self) -> int:
        """Logits: one per class (binary: two, MedMNIST style)."""
        return len(self.classes)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> ClassifierConfig:
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["classes"] = tuple(data["classes"])
        return cls(**data)


def _net_class() -> Any:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class _ClassifierNet(nn.Module):
        """Resize ``(B, C, *spatial)`` in ``[0, 1]`` to ``input_size``, normalise, classify."""

        def __init__(self, config: ClassifierConfig, pretrained: bool = True) -> None:
            super().__init__()
            from medseg.classify.networks import build_network

            self.config = config
            self.backbone = build_network(
                config.model,
                config.spatial_dims,
                config.in_channels,
                config.num_outputs,
                pretrained,
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            cfg = self.config
            if x.shape[-1] != cfg.input_size:
                mode = "bilinear" if cfg.spatial_dims == 2 else "trilinear"
                size = (cfg.input_size,) * cfg.spatial_dims
                x = F.interpolate(x, size=size, mode=mode, align_corners=False)
            return self.backbone((x - cfg.mean) / cfg.std)

    return _ClassifierNet


def build_classifier_net(config: ClassifierConfig, pretrained: bool = True) -> Any:
    """The ``torch.nn.Module`` of a classifier (built lazily so torch loads on first use):
    images -> logits, or for ``tinyvit`` the head (features -> logits)."""
    if config.model == "tinyvit":
        from medseg.classify.feature_head import build_feature_head

        return build_feature_head(config)
    return _net_class()(config, pretrained)


def _probabilities(logits: Any, task: str) -> Any:
    return logits.sigmoid() if task == "multi-label" else logits.softmax(1)


class Classifier:
    """A trained network plus its configuration.

    ``predict_proba`` takes float images ``(N, C, H, W)`` / ``(N, C, Z, Y, X)`` in ``[0, 1]``
    (any size: they are interpolated) or a list of files, and returns ``(N, K)`` probabilities.
    """

    def __init__(self, config: ClassifierConfig, net: Any | None = None) -> None:
        self.config = config
        self.net = net if net is not None else build_classifier_net(config, pretrained=False)
        self.net.eval()

    @property
    def classes(self) -> list[str]:
        return list(self.config.classes)

    def _as_array(self, images: np.ndarray | Sequence[str | Path]) -> np.ndarray:
        if isinstance(images, np.ndarray):
            arr = images.astype(np.float32, copy=False)
        else:
            from medseg.classify.data import load_images

            arr = load_images(
                [str(p) for p in images], self.config.data_size, self.config.in_channels
            )
        cfg = self.config
        if arr.ndim != cfg.spatial_dims + 2 or arr.shape[1] != cfg.in_channels:
            raise InputError(
                f"images of shape {arr.shape} do not fit this {cfg.spatial_dims}D model with "
                f"{cfg.in_channels} channel(s): expected (N, {cfg.in_channels}, "
                + ", ".join(["size"] * cfg.spatial_dims)
                + ")"
            )
        return arr

    def predict_proba(
        self, images: np.ndarray | Sequence[str | Path], batch_size: int = 64
    ) -> np.ndarray:
        """Probabilities ``(N, K)``: softmax over classes, or per-label sigmoid (multi-label)."""
        import torch

        arr = self._as_array(images)
        out = []
        self.net.eval()
        with torch.inference_mode():
            for i in range(0, len(arr), batch_size):
                x = torch.from_numpy(np.ascontiguousarray(arr[i : i + batch_size]))
                probs = _probabilities(self.net(x), self.config.task)
                if self.config.tta:
                    flipped = _probabilities(self.net(x.flip(-1)), self.config.task)
                    probs = (probs + flipped) / 2
                out.append(probs.numpy())
        return np.concatenate(out).astype(np.float64)

    def predict(self, images: np.ndarray | Sequence[str | Path]) -> np.ndarray:
        """Class indices ``(N,)`` (multi-label: 0/1 ``(N, K)``), thresholds as MedMNIST."""
        from medseg.classify.metrics import predict_labels

        return predict_labels(self.predict_proba(images), self.config.task)

    def save(self, folder: str | Path) -> Path:
        """Write ``classifier.json`` and ``weights.pt`` into ``folder`` (created)."""
        import torch

        from medseg.io import atomic_path

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / WEIGHTS_FILE) as tmp:
            torch.save(self.net.state_dict(), tmp)
        (folder / CONFIG_FILE).write_text(self.config.to_json())
        return folder


def load(folder: str | Path) -> Classifier:
    """Read a model folder written by :meth:`Classifier.save` (or ``medseg classify train``)."""
    import torch

    from medseg.classify.ensemble import is_ensemble_folder, load_ensemble

    folder = Path(folder)
    if is_ensemble_folder(folder):
        return load_ensemble(folder)
    cfg_path, weights = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not cfg_path.is_file() or not weights.is_file():
        raise ModelError(
            f"{folder} is not a classifier folder (needs {CONFIG_FILE}, {WEIGHTS_FILE})"
        )
    try:
        config = ClassifierConfig.from_json(cfg_path.read_text())
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{cfg_path}: unusable configuration: {exc}") from exc
    net = build_classifier_net(config, pretrained=False)
    try:
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except Exception as exc:  # pickle, zip and key errors from torch
        raise ModelError(f"cannot load weights {weights}: {exc}") from exc
    if config.model == "tinyvit":
        from medseg.classify.feature_head import FeatureClassifier

        return FeatureClassifier(config, net)
    return Classifier(config, net)
