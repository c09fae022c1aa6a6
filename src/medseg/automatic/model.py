"""A trained ``medseg auto`` model loaded for prediction: sliding-window inference.

Steps for one image (arrays in medseg order, 2D ``(H, W[, C])`` / 3D ``(Z, Y, X[, C])``):
preprocess as in training (crop to non-zero, normalise, transpose, resample), run
``monai.inferers.sliding_window_inference`` with Gaussian blending (nnU-Net's sigma = 1/8 of
the patch) over the resampled ``(C, *sp)`` array, average logits over folds and optional
mirroring, resample logits back class by class while keeping a running argmax (memory: two
float32 volumes at the input size), paste into the uncropped grid and map class indices to
label values. The output ``LabelMap`` has the input's exact geometry.

Memory: MONAI keeps the whole-volume output ``(K, *sp)`` and a count map in float32, i.e.
``(K + 1) * 4`` bytes per resampled voxel; with two classes a 512x512x300 volume needs about
1 GB for them, which stays inside the 4 GB target (measured 3.80 GB peak RSS for the whole
process, see docs/benchmarks.md).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError, ModelError
from medseg.io.image import Image, LabelMap

__all__ = ["PredictConfig", "AutoModel", "sliding_window_logits"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictConfig:
    """Inference options.

    ``folds``: fold names to ensemble (``None`` = every fold with the checkpoint);
    ``checkpoint``: ``final``, ``best`` or ``latest``; ``postprocess``: ``auto`` applies
    ``postprocessing.json`` when validation chose it, ``on``/``off`` force it.
    """

    folds: tuple[str, ...] | None = None
    checkpoint: str = "final"
    tta: bool = False
    overlap: float = 0.5
    sw_batch_size: int = 2
    postprocess: str = "auto"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.checkpoint not in ("final", "best", "latest"):
            raise InputError(f"checkpoint must be final, best or latest, got {self.checkpoint!r}")
        if not 0 <= self.overlap < 1:
            raise InputError(f"overlap must be in [0, 1), got {self.overlap}")
        if self.postprocess not in ("auto", "on", "off"):
            raise InputError(f"postprocess must be auto, on or off, got {self.postprocess!r}")
        if self.sw_batch_size < 1:
            raise InputError(f"sw_batch_size must be >= 1, got {self.sw_batch_size}")


def _mirrored(predictor: Callable[[Any], Any], dims: int) -> Callable[[Any], Any]:
    """Average of the predictor over all flips of the spatial axes (2**dims passes)."""

    def run(x: Any) -> Any:
        axes = [a + 2 for a in range(dims)]
        total = None
        combos = [c for r in range(dims + 1) for c in itertools.combinations(axes, r)]
        for combo in combos:
            xin = x.flip(combo) if combo else x
            y = predictor(xin)
            y = y.flip(combo) if combo else y
            total = y if total is None else total + y
        return total / len(combos)

    return run


def sliding_window_logits(
    data: Any,
    predictor: Callable[[Any], Any],
    patch_size: Sequence[int],
    *,
    overlap: float = 0.5,
    sw_batch_size: int = 2,
    tta: bool = False,
) -> Any:
    """Blend patch predictions over a whole array with a Gaussian weight.

    Args:
        data: ``(C, *sp)`` tensor; ``sp`` has 2 or 3 axes.
        predictor: maps ``(B, C, *patch)`` to ``(B, K, *patch)``.
        patch_size: the predictor's patch; with 2 entries on 3D data every slice along the
            first axis is predicted in 2D.

    Returns:
        ``(K, *sp)`` float32 tensor.
    """
    import torch
    from monai.inferers import sliding_window_inference

    slices = data.ndim - 1 == 3 and len(patch_size) == 2
    net = _mirrored(predictor, len(patch_size)) if tta else predictor
    roi = (1, *patch_size) if slices else tuple(patch_size)

    def run(x: torch.Tensor) -> torch.Tensor:
        if slices:  # (B, C, 1, py, px) -> 2D network -> back
            return net(x[:, :, 0])[:, :, None]
        return net(x)

    with torch.no_grad():
        out = sliding_window_inference(
            data[None].float(),
            roi,
            sw_batch_size,
            run,
            overlap=overlap,
            mode="gaussian",
            sigma_scale=0.125,
            padding_mode="constant",
        )
    return out[0]


class AutoModel:
    """A trained model folder: plan, one network per fold, post-processing choice.

    Args:
        model_dir: folder written by ``medseg auto train`` (``plans.json``, ``fold_*/``).
        config: which folds/checkpoint to use and how to predict.
    """

    def __init__(self, model_dir: str | Path, config: PredictConfig | None = None) -> None:
        import torch

        from medseg.automatic.network import build_network
        from medseg.automatic.plan import Plan, load_plan
        from medseg.automatic.postprocess import load_postprocessing

        self.dir = Path(model_dir)
        self.cfg = config or PredictConfig()
        self.plan = load_plan(self.dir / "plans.json")
        self.device = torch.device(self.cfg.device)
        self.networks, self.folds = [], []
        for fold_dir in self._fold_dirs():
            ckpt = fold_dir / f"checkpoint_{self.cfg.checkpoint}.pt"
            state = torch.load(ckpt, map_location="cpu", weights_only=False)
            if Plan.from_dict(state["plan"]).to_dict() != self.plan.to_dict():
                raise ModelError(
                    f"{ckpt}: trained with a different plan than {self.dir}/plans.json"
                )
            net = build_network(self.plan, deep_supervision=state["config"]["deep_supervision"])
            net.load_state_dict(state["model"])
            self.networks.append(net.to(self.device).eval())
            self.folds.append(fold_dir.name.removeprefix("fold_"))
        pp = load_postprocessing(self.dir / "postprocessing.json")
        self.postprocess = {"auto": pp, "off": [], "on": [v for v in self.plan.label_values if v]}[
            self.cfg.postprocess
        ]

    def _fold_dirs(self) -> list[Path]:
        name = f"checkpoint_{self.cfg.checkpoint}.pt"
        if self.cfg.folds is not None:
            dirs = [self.dir / f"fold_{f}" for f in self.cfg.folds]
            missing = [str(d / name) for d in dirs if not (d / name).is_file()]
            if missing:
                raise ModelError(f"missing checkpoint(s): {', '.join(missing)}")
            return dirs
        dirs = sorted(d for d in self.dir.glob("fold_*") if (d / name).is_file())
        if not dirs:
            raise ModelError(f"{self.dir}: no fold_*/{name} (train the model first)")
        return dirs

    def logits(self, data: np.ndarray) -> Any:
        """Fold-averaged ``(K, *sp)`` logits of a preprocessed ``(C, *sp)`` array."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(data)).to(self.device)
        total = None
        for net in self.networks:
            out = sliding_window_logits(
                x,
                net,
                self.plan.patch_size,
                overlap=self.cfg.overlap,
                sw_batch_size=self.cfg.sw_batch_size,
                tta=self.cfg.tta,
            )
            total = out if total is None else total.add_(out)
        return total.div_(len(self.networks)).cpu()

    def predict(self, image: Image) -> LabelMap:
        """Segment one image (channel-last when it has several channels) on its own grid."""
        from medseg.automatic.postprocess import keep_largest_component
        from medseg.automatic.preprocess import preprocess_image, resize_argmax

        plan = self.plan
        if (image.num_channels if image.channels else 1) != plan.in_channels:
            raise InputError(
                f"the model expects {plan.in_channels} channel(s) {plan.channel_names}, "
                f"the image has {image.num_channels if image.channels else 1}"
            )
        data, geom = preprocess_image(image, plan)
        logits = self.logits(data)
        del data
        cropped_t = tuple(geom.cropped_shape[a] for a in plan.transpose)
        idx = resize_argmax(lambda k: logits[k].numpy(), plan.num_classes, cropped_t)
        logits = None  # release the (K, *sp) volume before pasting
        idx = idx.transpose(np.argsort(plan.transpose))
        lut = np.array(
            plan.label_values, dtype=np.uint16 if max(plan.label_values) > 255 else np.uint8
        )
        out = np.zeros(geom.shape, dtype=lut.dtype)
        out[tuple(slice(a, b) for a, b in geom.bbox)] = lut[idx]
        if self.postprocess:
            out = keep_largest_component(out, self.postprocess)
        return LabelMap.like(image, out, label_names=plan.label_names)
