"""SAM-style iterative fine-tuning of LiteMedSAM's prompt encoder and mask decoder on cached
image embeddings (the image encoder stays frozen and is never run).

One training step, for a batch of ``B`` targets (:class:`~.data.ClickCache`), all in the
256 x 256 model frame:

1. the first prompt: the target's box with each side jittered (``box_jitter``, as
   ``medseg bench``) with probability ``p_box``, else one positive click on the target's
   innermost pixel (the first click of ``medseg bench``'s ``clicks`` protocol);
2. predict (with gradients: loss on the first prediction);
3. ``1..max_corrections`` rounds (uniform): a click from the error of the previous
   prediction (with probability ``p_center_click`` the centre of the largest error region,
   as ``medseg bench`` clicks, else a random pixel deep inside that region), appended to
   the earlier clicks (the box is kept), and the previous low-resolution logits fed back as
   ``mask_input`` (outside the image set to -8 as at inference; binarised to +/-8 with
   probability ``p_binary_mask_input``, as a boolean ``mask_input``); every round is
   predicted (with ``loss_every_round``, the default, each with gradients; else only the
   last);
4. loss = Dice + BCE of the first prediction plus the mean Dice + BCE of the correction
   rounds (``loss_every_round``) or of the last round only.

Only ``prompt_encoder`` and ``mask_decoder`` parameters are optimised (AdamW, no weight
decay by default, linear warm-up then cosine over the time budget or ``max_steps``; the
prompt encoder, whose point embeddings LiteMedSAM never trained, at ``prompt_lr_mult`` times
the learning rate). The
single-mask output (mask token 0) is trained; the multimask output MLPs and the IoU head get
no gradient and stay as they were (the other mask tokens still move: every token attends to
the others in the decoder's transformer).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.models.litemedsam_clicks import TRAINED_PREFIXES
from medseg.prompts.simulation.clicks import (
    error_regions,
    next_click,
    region_distance,
    simulate_box,
)
from medseg.training.foundation.data import ClickCache

__all__ = ["FoundationTrainConfig", "TrainResult", "build_net", "episode_loss", "save_decoder",
           "decoder_state", "load_decoder", "train", "TRAINED_PREFIXES"]  # fmt: skip

log = logging.getLogger(__name__)

#: State-dict prefixes of the fine-tuned parts (everything else is LiteMedSAM's).
PAD_LOGIT = -8.0


@dataclass(frozen=True)
class FoundationTrainConfig:
    """Fine-tuning settings (see the module docstring for the recipe)."""

    time_budget_s: float = 2700.0
    max_steps: int | None = None
    batch_size: int = 8
    lr: float = 3e-5
    weight_decay: float = 0.0
    warmup_steps: int = 20
    max_corrections: int = 5
    p_box: float = 0.7
    box_jitter: float = 0.1
    p_center_click: float = 0.7
    p_binary_mask_input: float = 0.2
    loss_every_round: bool = True
    prompt_lr_mult: float = 1.0
    seed: int = 0
    num_threads: int | None = 1
    checkpoint_every_s: float = 300.0
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_corrections < 0 or self.prompt_lr_mult <= 0:
            raise InputError("batch_size must be >= 1, max_corrections >= 0 and prompt_lr_mult > 0")
        for name in ("p_box", "box_jitter", "p_center_click", "p_binary_mask_input"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass
class TrainResult:
    """What :func:`train` did: steps, wall time and the running loss per logged step."""

    steps: int
    seconds: float
    losses: list[float]


def build_net() -> Any:
    """LiteMedSAM's network with the bundled weights, image encoder frozen."""
    from medseg.models.litemedsam import LiteMedSAM, LiteMedSAMConfig

    net = LiteMedSAM(LiteMedSAMConfig(backend="torch")).net
    for p in net.image_encoder.parameters():
        p.requires_grad_(False)
    return net


def seg_loss(logits: Any, target: Any) -> Any:
    """Mean over the batch of BCE + soft Dice loss; ``(B, 1, S, S)`` logits and 0/1 target."""
    import torch.nn.functional as F

    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = logits.sigmoid().flatten(1)
    t = target.flatten(1)
    dice = 1.0 - (2.0 * (p * t).sum(1) + 1.0) / (p.sum(1) + t.sum(1) + 1.0)
    return bce + dice.mean()


def _decode(net: Any, emb: Any, boxes: Any, points: Any, mask_input: Any) -> Any:
    """Low-resolution logits ``(B, 1, 256, 256)``; ``points`` = (coords, labels) or None."""
    sparse, dense = net.prompt_encoder(points=points, boxes=boxes, masks=mask_input)
    low_res, _ = net.mask_decoder(
        image_embeddings=emb,
        image_pe=net.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=False,
    )
    return low_res


def _correction(
    pred: np.ndarray, gt: np.ndarray, clicked: np.ndarray, rng: np.random.Generator, p_center: float
) -> tuple[float, float, int]:
    """``(x, y, label)`` of the next click on the error of ``pred`` (``(S, S)`` bool), or
    ``(0, 0, -1)`` (SAM's padding point) when nothing is left to correct."""
    if rng.random() < p_center:
        c = next_click(pred, gt, clicked=clicked)
        if c is None:
            return 0.0, 0.0, -1
        return float(c.point[0]), float(c.point[1]), c.label
    regions = error_regions(pred, gt)
    if not regions:
        return 0.0, 0.0, -1
    dist = region_distance(regions[0].mask)
    ys, xs = np.nonzero(dist >= 0.5 * dist.max())
    k = int(rng.integers(ys.size))
    return float(xs[k]), float(ys[k]), int(gt[ys[k], xs[k]])


def _mask_input(prev: Any, resized: list[tuple[int, int]], binary: bool) -> Any:
    import torch

    m = prev.detach().clone()
    if binary:
        m = torch.where(m > 0, -PAD_LOGIT, PAD_LOGIT)
    for i, (h, w) in enumerate(resized):
        m[i, :, h:, :] = PAD_LOGIT
        m[i, :, :, w:] = PAD_LOGIT
    return m


def episode_loss(
    net: Any,
    emb: np.ndarray,
    masks: np.ndarray,
    resized: list[tuple[int, int]],
    rng: np.random.Generator,
    cfg: FoundationTrainConfig,
) -> tuple[Any, dict[str, float]]:
    """Loss of one simulated interaction episode for a batch (module docstring, steps 1-4).

    ``emb`` ``(B, 256, 64, 64)`` float32, ``masks`` ``(B, 256, 256)`` bool. Returns the loss
    tensor and ``{"dice_first", "dice_last", "rounds"}`` (hard Dice of the predictions)."""
    import torch

    e = torch.from_numpy(emb)
    target = torch.from_numpy(masks[:, None].astype(np.float32))
    boxes, coords, labels = None, [], []
    if rng.random() < cfg.p_box:
        boxes = torch.tensor(
            [simulate_box(m, cfg.box_jitter, rng) for m in masks], dtype=torch.float32
        )
    else:
        for m in masks:
            c = next_click(np.zeros_like(m), m)
            coords.append([c.point]), labels.append([1])
    clicked = np.zeros_like(masks)

    def points() -> Any:
        if not coords:
            return None
        return torch.tensor(coords, dtype=torch.float32), torch.tensor(labels, dtype=torch.int64)

    first = _decode(net, e, boxes, points(), None)
    loss = seg_loss(first, target)
    rounds = int(rng.integers(1, cfg.max_corrections + 1)) if cfg.max_corrections else 0
    prev, round_losses = first, []
    for r in range(rounds):
        pred = (prev.detach()[:, 0] > 0).numpy()
        new = [
            _correction(pred[i], masks[i], clicked[i], rng, cfg.p_center_click)
            for i in range(len(masks))
        ]
        for i, (x, y, lab) in enumerate(new):
            if lab >= 0:
                clicked[i, int(y), int(x)] = True
            if coords:
                coords[i].append((x, y)), labels[i].append(lab)
        if not coords:
            coords = [[(x, y)] for x, y, _ in new]
            labels = [[lab] for _, _, lab in new]
        mask_in = _mask_input(prev, resized, bool(rng.random() < cfg.p_binary_mask_input))
        with torch.set_grad_enabled(cfg.loss_every_round or r == rounds - 1):
            prev = _decode(net, e, boxes, points(), mask_in)
        if cfg.loss_every_round or r == rounds - 1:
            round_losses.append(seg_loss(prev, target))
    if round_losses:
        loss = loss + sum(round_losses) / len(round_losses)
    stats = {"dice_first": _hard_dice(first, masks), "dice_last": _hard_dice(prev, masks),
             "rounds": float(rounds)}  # fmt: skip
    return loss, stats


def _hard_dice(logits: Any, masks: np.ndarray) -> float:
    p = (logits.detach()[:, 0] > 0).numpy()
    inter = (p & masks).sum((1, 2))
    return float(np.mean(2.0 * inter / np.maximum(p.sum((1, 2)) + masks.sum((1, 2)), 1)))


def decoder_state(net: Any) -> dict[str, Any]:
    """The fine-tuned part of ``net.state_dict()`` (keys with :data:`TRAINED_PREFIXES`)."""
    return {k: v for k, v in net.state_dict().items() if k.startswith(TRAINED_PREFIXES)}


def save_decoder(net: Any, path: str | Path, meta: dict[str, Any]) -> Path:
    """Write the fine-tuned weights as fp16 (``path``) and ``meta`` as ``path`` + ``.json``."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).clone() for k, v in decoder_state(net).items()}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    Path(f"{path}.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return path


def load_decoder(net: Any, path: str | Path) -> Any:
    """Load fine-tuned weights written by :func:`save_decoder` into ``net`` (to continue
    training from them); ``InputError`` when ``path`` holds other keys."""
    import torch

    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    expected = set(decoder_state(net))
    if not isinstance(state, dict) or set(state) != expected:
        raise InputError(f"{path} does not hold exactly the {TRAINED_PREFIXES} weights")
    net.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    return net


def _lr_factor(step: int, elapsed: float, cfg: FoundationTrainConfig) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    frac = step / cfg.max_steps if cfg.max_steps else elapsed / cfg.time_budget_s
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0)))


def train(
    cache: ClickCache,
    cfg: FoundationTrainConfig,
    out: str | Path | None = None,
    net: Any = None,
    meta: dict[str, Any] | None = None,
) -> TrainResult:
    """Fine-tune ``net`` (default :func:`build_net`) in place on ``cache``; checkpoints and the
    final weights go to ``out`` (:func:`save_decoder`) when given."""
    import torch

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = build_net() if net is None else net
    net.train()
    net.image_encoder.eval()
    named = [(n, p) for n, p in net.named_parameters() if n.startswith(TRAINED_PREFIXES)]
    groups = [
        {"params": [p for n, p in named if n.startswith("prompt_encoder.")],
         "base_lr": cfg.lr * cfg.prompt_lr_mult},
        {"params": [p for n, p in named if not n.startswith("prompt_encoder.")],
         "base_lr": cfg.lr},
    ]  # fmt: skip
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    t0 = last_ckpt = time.time()
    step, losses, run = 0, [], None
    info = {"config": asdict(cfg), "targets": len(cache.targets), **(meta or {})}
    while True:
        elapsed = time.time() - t0
        if (cfg.max_steps and step >= cfg.max_steps) or (
            not cfg.max_steps and elapsed >= cfg.time_budget_s
        ):
            break
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * _lr_factor(step, elapsed, cfg)
        emb, masks, resized = cache.batch(cache.sample(rng, cfg.batch_size))
        loss, stats = episode_loss(net, emb, masks, resized, rng, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        value = float(loss.detach())
        run = value if run is None else 0.95 * run + 0.05 * value
        if step % cfg.log_every == 0:
            losses.append(run)
            d0, d1, n = stats["dice_first"], stats["dice_last"], stats["rounds"]
            log.info("step %d %.0fs loss %.4f dice first %.3f last %.3f (%d rounds)",
                     step, time.time() - t0, run, d0, d1, n)  # fmt: skip
        if out is not None and time.time() - last_ckpt >= cfg.checkpoint_every_s:
            save_decoder(net, out, {**info, "steps": step, "seconds": round(time.time() - t0)})
            last_ckpt = time.time()
    net.eval()
    seconds = time.time() - t0
    if out is not None:
        save_decoder(net, out, {**info, "steps": step, "seconds": round(seconds),
                                "final_running_loss": run})  # fmt: skip
    return TrainResult(step, seconds, losses)
