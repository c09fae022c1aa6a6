"""``medseg-interactive``: medseg's own interactive model (box, positive/negative clicks,
positive/negative scribbles and the previous mask, in any mix), in the spirit of RITM and
ScribblePrompt: a small MONAI U-Net on a crop around the prompts.

Per prediction and object:

1. **Crop.** The extent of the *positive* evidence (box, positive clicks, positive scribble
   pixels and the previous mask's foreground; only if there is none, the negative prompts)
   gives a square window (:func:`medseg.models.interactive_net.crop_window`):
   ``side = max(enlarge * longest extent side, minimum)``, at most the image's longest side,
   kept inside the image where it fits. The minimum is ``min_side`` (24 px) when a box or
   a previous mask is given, else (clicks/scribbles only, where the object's size is
   unknown) ``max(click_min_side, click_min_fraction * max(H, W))`` = ``max(64, 25 %)``.
   As the previous mask grows, later corrections get larger windows.
2. **Encode.** The window is resampled to ``S x S`` (128) and the prompts are drawn in that
   frame (:func:`medseg.models.interactive_net.encode_inputs`: 9 channels).
3. **Predict and paste back.** The logits are resized to the window and pasted onto the
   image; pixels outside the window are background (logit -20).

``encode`` only stores the normalised image (the network sees a different crop for each
prompt), so ``set_image`` is cheap and every ``predict`` runs the network once per object.
Weights: ``medseg/assets/medseg_interactive.pt`` (float16, loaded with
``importlib.resources``); see ``docs/models.md`` for the training command and data.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError, ModelError, PromptError
from medseg.models.base import Decoded, PromptableModel
from medseg.models.interactive_net import (
    CropWindow,
    build_network,
    crop_resize,
    crop_window,
    encode_inputs,
    paste_back,
)
from medseg.models.progressive_merge import progressive_merge, touchup_merge
from medseg.models.registry import build_config, register_model
from medseg.prompts.scribbles import validate_scribbles as scribble_masks
from medseg.prompts.types import PromptSet

__all__ = [
    "WEIGHTS_FORMAT",
    "read_weights",
    "ASSET_NAME",
    "InteractiveConfig",
    "InteractiveEmbedding",
    "InteractiveModel",
    "ObjectPrompts",
    "object_window",
    "scribble_masks",
    "medseg_interactive",
]

log = logging.getLogger(__name__)

ASSET_NAME = "medseg_interactive.pt"
OUTSIDE_LOGIT = -20.0


@dataclass(frozen=True)
class InteractiveConfig:
    """``medseg-interactive`` settings (JSON via :meth:`to_json`).

    Attributes:
        weights: weights file; None means the bundled ``medseg/assets`` file.
        num_threads: torch CPU threads, set once when the model is created (torch's
            setting is process-wide, so it is never changed per call: a server shares one
            model across request threads); None leaves torch's default. Default 1: the
            network is small, and with 2 threads on a busy 2-core machine a prediction took
            770 ms instead of 47 ms (measured, see docs/benchmarks.md).
        enlarge: window side / longest side of the prompts' extent.
        min_side: smallest window side (pixels) with a box or previous mask.
        click_min_side, click_min_fraction: smallest window side with clicks/scribbles
            only: ``max(click_min_side, click_min_fraction * max(H, W))``.
        tta: also run the network on the left-right mirrored input and average the logits
            (default; about 1.4x the predict time, measured: box + 3 clicks 0.848 -> 0.855
            on the held-out benchmark, docs/benchmarks.md).
        merge: how a click's prediction replaces the previous mask (with a previous mask
            and clicks, no scribbles; the newest click is the last point):
            ``"touchup"`` (default): a small correction (changing fewer pixels than
            ``touchup_change`` times the previous mask's area) is kept local: taken only
            within ``touchup_radius`` times the masks' extent of the newest click
            (:func:`.progressive_merge.touchup_merge`); larger ones are taken as they
            are; with a box the ``box_touchup_*`` thresholds apply (docs/benchmarks.md);
            ``"progressive"``: the newest click changes only the connected region it
            flipped (FocalClick's rule); ``"none"``: the new prediction replaces the
            previous one.
        touchup_change, touchup_radius: the ``"touchup"`` rule's thresholds.
        box_touchup_change, box_touchup_radius: the same for the clicks of a box session
            (``box_touchup_change=0`` takes every correction of a box as predicted).
        monotone: with ``"touchup"``, a positive click only adds and a negative one only
            removes pixels near it.
    """

    weights: str | None = None
    num_threads: int | None = 1
    enlarge: float = 1.5
    min_side: int = 24
    click_min_side: int = 64
    click_min_fraction: float = 0.25
    tta: bool = True
    merge: str = "touchup"
    touchup_change: float = 0.2
    touchup_radius: float = 0.1
    box_touchup_change: float = 0.1
    box_touchup_radius: float = 0.25
    monotone: bool = False

    def __post_init__(self) -> None:
        if self.merge not in ("none", "progressive", "touchup"):
            raise ModelError(
                f"merge must be 'none', 'progressive' or 'touchup', got {self.merge!r}"
            )
        if min(self.touchup_change, self.touchup_radius, self.box_touchup_change,
               self.box_touchup_radius) < 0:  # fmt: skip
            raise ModelError("the touchup_* and box_touchup_* thresholds must be >= 0")
        if self.enlarge < 1.0 or self.min_side < 2 or self.click_min_side < 2:
            raise ModelError("enlarge must be >= 1 and the minimum sides >= 2")
        if not 0.0 <= self.click_min_fraction <= 1.0:
            raise ModelError(f"click_min_fraction must be in [0, 1], got {self.click_min_fraction}")
        if self.num_threads is not None and int(self.num_threads) < 1:
            raise ModelError(f"num_threads must be >= 1, got {self.num_threads}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclass(frozen=True, eq=False)
class InteractiveEmbedding:
    """The normalised image ``(H, W, 3)`` float32 in ``[0, 1]`` (gray repeated)."""

    image: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.image.shape[0]), int(self.image.shape[1]))

    @property
    def nbytes(self) -> int:
        return int(self.image.nbytes)


@dataclass(frozen=True, eq=False)
class ObjectPrompts:
    """Prompts of one object on an ``(H, W)`` image (image pixel coordinates).

    Attributes:
        box: ``(x0, y0, x1, y1)`` or None.
        points: ``(P, 2)`` ``(x, y)``; labels: ``(P,)`` 1 positive / 0 negative.
        scribbles: ``(2, H, W)`` bool: positive, negative scribble pixels; or None.
        mask_logits: ``(H, W)`` previous logits (> 0 foreground) or None.
    """

    box: np.ndarray | None = None
    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    scribbles: np.ndarray | None = None
    mask_logits: np.ndarray | None = None


def _bbox(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


def _union(boxes: Sequence[tuple[float, ...] | None]) -> tuple[float, ...] | None:
    found = [b for b in boxes if b is not None]
    if not found:
        return None
    arr = np.asarray(found, np.float64)
    return (arr[:, 0].min(), arr[:, 1].min(), arr[:, 2].max(), arr[:, 3].max())


def _points_box(points: np.ndarray | None) -> tuple[float, ...] | None:
    if points is None or len(points) == 0:
        return None
    p = np.asarray(points, np.float64).reshape(-1, 2)
    return (p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max())


def object_window(obj: ObjectPrompts, shape: tuple[int, int], cfg: InteractiveConfig) -> CropWindow:
    """The crop window of one object's prompts (rule in the module docstring).

    Raises ``PromptError`` when nothing says where the object is (no box, no click, no
    scribble pixel and an empty or missing previous mask).
    """
    labels = np.zeros(0, np.int64) if obj.labels is None else np.asarray(obj.labels)
    pts = np.zeros((0, 2)) if obj.points is None else np.asarray(obj.points).reshape(-1, 2)
    scr = obj.scribbles
    prev = None if obj.mask_logits is None else _bbox(obj.mask_logits > 0)
    box = None if obj.box is None else tuple(float(v) for v in obj.box)
    positive = _union([box, _points_box(pts[labels == 1]), prev,
                       None if scr is None else _bbox(scr[0])])  # fmt: skip
    extent = positive or _union([_points_box(pts[labels == 0]),
                                 None if scr is None else _bbox(scr[1])])  # fmt: skip
    if extent is None:
        raise PromptError(
            "nothing to segment: give a box, a click, a scribble or a non-empty mask_input"
        )
    if box is not None or prev is not None:
        min_side = float(cfg.min_side)
    else:
        min_side = max(float(cfg.click_min_side), cfg.click_min_fraction * max(shape))
    return crop_window(extent, shape, enlarge=cfg.enlarge, min_side=min_side)


def _asset_path() -> Path:
    return Path(str(resources.files("medseg").joinpath("assets", ASSET_NAME)))


def _merged(logits: np.ndarray, obj: ObjectPrompts, cfg: InteractiveConfig) -> np.ndarray:
    """``cfg.merge`` of ``obj``'s newest click when it refines a previous mask with clicks
    only (with scribbles the order of the interactions is unknown: no merge)."""
    if obj.mask_logits is None or obj.scribbles is not None or obj.labels is None:
        return logits
    if len(obj.labels) == 0:
        return logits
    click = np.asarray(obj.points, np.float64).reshape(-1, 2)[-1]
    positive = bool(np.asarray(obj.labels).reshape(-1)[-1] == 1)
    if cfg.merge == "progressive":
        return progressive_merge(logits, obj.mask_logits, click, positive)
    # measured: with a box, a click's re-prediction improves the far boundary more often,
    # so box sessions keep less of the previous mask (a larger disk, smaller threshold)
    change, radius = cfg.touchup_change, cfg.touchup_radius
    if obj.box is not None:
        change, radius = cfg.box_touchup_change, cfg.box_touchup_radius
    return touchup_merge(logits, obj.mask_logits, click, radius, change,
                         positive if cfg.monotone else None)  # fmt: skip


#: Format tag of a ``medseg-interactive`` weights file (written by
#: :mod:`medseg.training.interactive.trainer`).
WEIGHTS_FORMAT = "medseg-interactive/1"


def read_weights(path: str | Path, context: str = "") -> dict:
    """The payload of a ``medseg-interactive`` weights file; ``InputError`` (prefixed with
    ``context``) when it is missing, unreadable or not a weights file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{context}no weights file at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt file
        raise InputError(f"{context}cannot read {path}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise InputError(f"{context}{path} is not a {WEIGHTS_FORMAT} weights file")
    return payload


class InteractiveModel(PromptableModel):
    """``medseg-interactive`` (see the module docstring)."""

    name = "medseg-interactive"
    prompt_kinds = frozenset({"box", "points", "mask", "scribbles"})
    refines_previous_mask = True
    num_multimask_outputs = 0

    def __init__(self, config: InteractiveConfig | None = None) -> None:
        import torch

        self.config = config or InteractiveConfig()
        path = Path(self.config.weights) if self.config.weights else _asset_path()
        try:
            payload = read_weights(path)
        except InputError as exc:
            raise ModelError(f"medseg-interactive weights: {exc}") from exc
        try:
            net_cfg = payload["net"]
            self.size = int(net_cfg["size"])
            self.net = build_network(net_cfg["channels"], net_cfg["res_units"])
            state = {k: v.float() for k, v in payload["state_dict"].items()}
            self.net.load_state_dict(state, strict=True)
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise ModelError(f"cannot load medseg-interactive weights {path}: {exc}") from exc
        self.net.eval()
        self.weights_path = str(path)
        self.iterations = int(payload.get("iterations", 0))
        if self.config.num_threads and torch.get_num_threads() != int(self.config.num_threads):
            torch.set_num_threads(int(self.config.num_threads))

    def encode(self, image: np.ndarray) -> InteractiveEmbedding:
        """Store a normalised ``(H, W)`` or ``(H, W, 3)`` image as ``(H, W, 3)`` float32."""
        img = np.asarray(image, np.float32)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        if img.ndim != 3 or img.shape[-1] != 3 or min(img.shape[:2]) < 1:
            raise InputError(
                f"medseg-interactive needs an (H, W) or (H, W, 3) image, got {img.shape}"
            )
        return InteractiveEmbedding(np.ascontiguousarray(img))

    def object_input(
        self, emb: InteractiveEmbedding, obj: ObjectPrompts
    ) -> tuple[np.ndarray, CropWindow]:
        """Network input ``(9, S, S)`` and crop window of one object."""
        shape, s = emb.shape, self.size
        window = object_window(obj, shape, self.config)
        image = crop_resize(emb.image, window, s)
        valid = crop_resize(np.ones(shape, np.float32), window, s)[0]
        pts = np.zeros((0, 2)) if obj.points is None else np.asarray(obj.points).reshape(-1, 2)
        lab = np.zeros(0, np.int64) if obj.labels is None else np.asarray(obj.labels)
        scr = None
        if obj.scribbles is not None:
            scr = crop_resize(np.moveaxis(obj.scribbles.astype(np.float32), 0, -1), window, s)
        prev = None
        if obj.mask_logits is not None:
            logits = crop_resize(obj.mask_logits, window, s, fill=OUTSIDE_LOGIT)[0]
            prev = 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))
        x = encode_inputs(
            image,
            valid=valid,
            box=None if obj.box is None else window.box_to_net(obj.box, s),
            pos_points=window.to_net(pts[lab == 1], s),
            neg_points=window.to_net(pts[lab == 0], s),
            pos_scribble=None if scr is None else scr[0] > 0,
            neg_scribble=None if scr is None else scr[1] > 0,
            prev_prob=prev,
        )
        return x, window

    def predict_objects(
        self, emb: InteractiveEmbedding, objects: Sequence[ObjectPrompts]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Logits ``(N, H, W)`` float32 and scores ``(N,)`` (mean foreground probability of
        the predicted mask inside the window; 0 when it is empty)."""
        import torch

        inputs = [self.object_input(emb, o) for o in objects]
        x = torch.from_numpy(np.stack([i[0] for i in inputs]))
        with torch.inference_mode():
            if self.config.tta:  # every input channel is a spatial map: mirror them all
                both = self.net(torch.cat([x, x.flip(-1)]))[:, 0]
                out = ((both[: len(x)] + both[len(x) :].flip(-1)) / 2).numpy()
            else:
                out = self.net(x)[:, 0].numpy()
        logits = np.stack([paste_back(o, w, emb.shape, OUTSIDE_LOGIT)
                           for o, (_, w) in zip(out, inputs, strict=True)])  # fmt: skip
        prob = 1.0 / (1.0 + np.exp(-np.clip(out, -30, 30)))
        fg = out > 0
        scores = np.array([p[f].mean() if f.any() else 0.0 for p, f in zip(prob, fg, strict=True)])
        return logits.astype(np.float32), scores.astype(np.float32)

    def decode(
        self, embedding: InteractiveEmbedding, prompts: PromptSet, *, multimask: bool = False
    ) -> Decoded:
        """Masks for the ``N`` objects of ``prompts`` (one candidate each)."""
        if multimask:
            raise PromptError("medseg-interactive has no multimask output")
        scribbles = getattr(prompts, "scribbles", None)
        objects = []
        for i in range(prompts.num_objects):
            objects.append(ObjectPrompts(
                box=None if prompts.boxes is None else prompts.boxes[i],
                points=None if prompts.points is None else prompts.points[i],
                labels=None if prompts.point_labels is None else prompts.point_labels[i],
                scribbles=None if scribbles is None else np.asarray(scribbles[i], bool),
                mask_logits=None if prompts.mask_input is None else prompts.mask_input[i],
            ))  # fmt: skip
        logits, scores = self.predict_objects(embedding, objects)
        if self.config.merge != "none":
            for i, obj in enumerate(objects):
                logits[i] = _merged(logits[i], obj, self.config)
        return Decoded(logits=logits[:, None], scores=scores[:, None])

    def config_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dataclasses.asdict(self.config),
                "weights_path": self.weights_path, "iterations": self.iterations}  # fmt: skip


@register_model("medseg-interactive")
def medseg_interactive(**overrides: Any) -> InteractiveModel:
    """``medseg-interactive`` with :class:`InteractiveConfig` defaults replaced by ``overrides``."""
    return InteractiveModel(build_config("medseg-interactive", InteractiveConfig, overrides))
