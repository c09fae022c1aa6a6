"""Training loop of ``medseg-interactive`` with checkpoints, resume and a time budget.

Iterative training as in RITM: each iteration draws a batch of samples, gives each a first
prompt, runs the network without gradient for ``r`` rounds (``r`` uniform in
``0..max_corrections``), each round feeding the prediction back as the previous mask and
adding one corrective click or scribble, then takes one gradient step (MONAI
``DiceCELoss`` on the logits) with everything so far as input.

A checkpoint (``config.checkpoint``, default ``<out>.ckpt``) holds the network, optimiser,
iteration count, training time and random-generator states; it is written every
``checkpoint_every_s`` seconds and at the end. ``resume=True`` continues from it: the
iteration count, optimiser state and random streams go on where they stopped. The time
budget counts the time of this invocation. The final weights (``out``: network
configuration + float16 state dict, a few MB) are what :mod:`medseg.models.interactive`
loads.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.models.interactive import WEIGHTS_FORMAT, read_weights

__all__ = [
    "InteractiveTrainConfig",
    "TrainState",
    "train",
    "save_weights",
    "lr_factor",
    "batch_dice",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InteractiveTrainConfig:
    """Training settings (JSON via :meth:`to_json`).

    Attributes:
        data: dataset folders (or folders of dataset folders).
        out: final weights file.
        checkpoint: checkpoint file (None: ``<out>.ckpt``).
        time_budget_s: training time of this invocation, seconds.
        max_iterations: stop at this total iteration count (None: only the time budget).
        holdout: leave out the held-out cases of :mod:`.split`.
        lr_schedule: ``"constant"``, or ``"cosine"``: the learning rate falls from ``lr`` to
            ``lr_min_fraction * lr`` by a half cosine over this invocation (its time budget, or
            its iterations up to ``max_iterations`` when that comes first), so the weights
            written at the end are annealed; a resumed run starts a new cosine.
        init: start from this weights file (a fresh optimiser; the iteration count and
            training time go on from the file's), e.g. to continue training the committed
            weights; not together with resume.
    """

    data: tuple[str, ...]
    out: str
    checkpoint: str | None = None
    time_budget_s: float = 7200.0
    max_iterations: int | None = None
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-5
    seed: int = 0
    device: str = "cpu"
    size: int = 128
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    res_units: int = 1
    max_corrections: int = 4
    p_synthetic: float = 0.35
    checkpoint_every_s: float = 300.0
    holdout: bool = True
    threads: int | None = 1
    lr_schedule: str = "constant"
    lr_min_fraction: float = 0.01
    init: str | None = None

    def __post_init__(self) -> None:
        if not self.data:
            raise InputError("give at least one --data folder")
        if self.batch_size < 1 or self.size % 2 ** (len(self.channels) - 1):
            raise InputError("batch_size must be >= 1 and size divisible by 2**(levels-1)")
        if self.max_corrections < 0:
            raise InputError(f"max_corrections must be >= 0, got {self.max_corrections}")
        if self.time_budget_s <= 0:
            raise InputError(f"time budget must be positive, got {self.time_budget_s}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise InputError(
                f"lr schedule must be 'constant' or 'cosine', not {self.lr_schedule!r}"
            )
        if self.device not in ("cpu", "cuda"):
            raise InputError(f"device must be 'cpu' or 'cuda', got {self.device!r}")

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.checkpoint or f"{self.out}.ckpt")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    def net_config(self) -> dict[str, Any]:
        return {"size": self.size, "channels": list(self.channels), "res_units": self.res_units}


@dataclass
class TrainState:
    """What a run did: total iterations, training seconds (all invocations), last losses."""

    iteration: int = 0
    elapsed_s: float = 0.0
    loss_ema: float = float("nan")
    dice_ema: float = float("nan")


def lr_factor(
    cfg: InteractiveTrainConfig, seconds: float, done: int, start_iteration: int
) -> float:
    """Multiplier of ``cfg.lr`` after ``seconds`` and ``done`` total iterations of an invocation
    that started at ``start_iteration`` (see ``lr_schedule``)."""
    if cfg.lr_schedule == "constant":
        return 1.0
    progress = seconds / cfg.time_budget_s
    if cfg.max_iterations is not None and cfg.max_iterations > start_iteration:
        progress = max(progress, (done - start_iteration) / (cfg.max_iterations - start_iteration))
    cosine = 0.5 * (1.0 + np.cos(np.pi * min(1.0, max(0.0, progress))))
    return float(cfg.lr_min_fraction + (1.0 - cfg.lr_min_fraction) * cosine)


def _ema(old: float, new: float, k: float = 0.02) -> float:
    return new if np.isnan(old) else (1 - k) * old + k * new


def _forward_batch(net, states, samples, device):
    import torch

    from medseg.training.interactive.simulate import encode_state

    x = np.stack([encode_state(s, b.image, b.valid) for s, b in zip(states, samples, strict=True)])
    return net(torch.from_numpy(x).to(device))


def train_step(net, opt, loss_fn, maker, rng, cfg: InteractiveTrainConfig) -> tuple[float, float]:
    """One iteration (see the module docstring); returns ``(loss, mean Dice)``."""
    import torch

    from medseg.training.interactive.simulate import InteractionState, correct, first_prompt

    samples = [maker(rng) for _ in range(cfg.batch_size)]
    states = [InteractionState(cfg.size) for _ in samples]
    for s, b in zip(states, samples, strict=True):
        first_prompt(s, b.gt, rng)
    for _ in range(int(rng.integers(0, cfg.max_corrections + 1))):
        with torch.no_grad():
            prob = torch.sigmoid(_forward_batch(net, states, samples, cfg.device))[:, 0]
        prob = prob.cpu().numpy()
        for s, b, p in zip(states, samples, prob, strict=True):
            s.prev_prob = p
            correct(s, p > 0.5, b.gt, rng)
    logits = _forward_batch(net, states, samples, cfg.device)
    gt = torch.from_numpy(np.stack([b.gt for b in samples])[:, None].astype(np.float32))
    gt = gt.to(cfg.device)
    loss = loss_fn(logits, gt)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
    opt.step()
    return float(loss.item()), batch_dice(logits.detach(), gt)


def batch_dice(logits: Any, gt: Any) -> float:
    """Mean over the batch of :func:`medseg.metrics.overlap.dice` of ``logits > 0`` vs ``gt``.

    ``logits``, ``gt``: ``(B, 1, H, W)`` tensors (``gt`` 0/1). An empty prediction of an
    empty target scores 1.0 (the metrics' rule).
    """
    from medseg.metrics.overlap import dice

    pred = (logits > 0).cpu().numpy()
    ref = gt.cpu().numpy() > 0.5
    return float(np.mean([dice(p, r) for p, r in zip(pred, ref, strict=True)]))


def save_weights(net, cfg: InteractiveTrainConfig, state: TrainState, path: str | Path) -> Path:
    """Write the final weights file (float16 state dict + network config), atomically."""
    import torch

    from medseg.io import atomic_path

    payload = {
        "format": WEIGHTS_FORMAT,
        "net": cfg.net_config(),
        "state_dict": {k: v.detach().cpu().half() for k, v in net.state_dict().items()},
        "iterations": state.iteration,
        "train_seconds": state.elapsed_s,
        "train_config": cfg.to_json(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _save_checkpoint(net, opt, rng, cfg, state) -> None:
    import torch

    from medseg.io import atomic_path

    payload = {
        "net": cfg.net_config(),
        "model": net.state_dict(),
        "optimizer": opt.state_dict(),
        "state": dataclasses.asdict(state),
        "rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "config": cfg.to_json(),
    }
    with atomic_path(cfg.checkpoint_path) as tmp:
        torch.save(payload, tmp)


def _load_checkpoint(net, opt, rng, cfg) -> TrainState:
    import torch

    path = cfg.checkpoint_path
    if not path.is_file():
        raise InputError(f"--resume: no checkpoint at {path}")
    ckpt = torch.load(path, map_location=cfg.device, weights_only=False)
    if ckpt["net"] != cfg.net_config():
        raise InputError(f"checkpoint network {ckpt['net']} differs from {cfg.net_config()}")
    net.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    rng.bit_generator.state = ckpt["rng"]
    torch.set_rng_state(ckpt["torch_rng"])
    state = TrainState(**ckpt["state"])
    log.info("resumed from %s at iteration %d", path, state.iteration)
    return state


def _load_init(net, cfg) -> TrainState:
    """Load the weights file ``cfg.init`` into ``net``; the state carries its iteration count."""
    path = Path(cfg.init)
    payload = read_weights(path, "--init: ")
    if payload["net"] != cfg.net_config():
        raise InputError(f"--init network {payload['net']} differs from {cfg.net_config()}")
    net.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()})
    log.info("initialised from %s (%d iterations)", path, payload.get("iterations", 0))
    return TrainState(
        iteration=int(payload.get("iterations", 0)),
        elapsed_s=float(payload.get("train_seconds", 0.0)),
    )


def _setup(cfg: InteractiveTrainConfig, sources, resume: bool):
    import torch
    from monai.losses import DiceCELoss

    from medseg.models.interactive_net import build_network
    from medseg.training.interactive.samples import SampleMaker

    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device available")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = build_network(cfg.channels, cfg.res_units).to(cfg.device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if resume and cfg.init:
        raise InputError("give either --resume or --init, not both")
    if resume:
        state = _load_checkpoint(net, opt, rng, cfg)
    else:
        state = _load_init(net, cfg) if cfg.init else TrainState()
    loss_fn = DiceCELoss(sigmoid=True)
    return net, opt, loss_fn, SampleMaker(sources, cfg.size, cfg.p_synthetic), rng, state


def train(
    cfg: InteractiveTrainConfig, sources, *, resume: bool = False, progress: bool = True
) -> TrainState:
    """Train on ``sources`` (:func:`.data.load_sources`) until the time budget or
    ``max_iterations``; writes checkpoints and the final weights. Returns the final state."""
    from tqdm import tqdm

    net, opt, loss_fn, maker, rng, state = _setup(cfg, sources, resume)
    net.train()
    start = time.monotonic()
    base_elapsed, last_ckpt = state.elapsed_s, start
    first_iteration = state.iteration
    bar = tqdm(total=cfg.max_iterations, initial=state.iteration, disable=not progress,
               unit="it", dynamic_ncols=True)  # fmt: skip
    try:
        while True:
            now = time.monotonic()
            if now - start >= cfg.time_budget_s:
                break
            if cfg.max_iterations is not None and state.iteration >= cfg.max_iterations:
                break
            factor = lr_factor(cfg, now - start, state.iteration, first_iteration)
            for group in opt.param_groups:
                group["lr"] = cfg.lr * factor
            loss, dice = train_step(net, opt, loss_fn, maker, rng, cfg)
            state.iteration += 1
            state.loss_ema, state.dice_ema = _ema(state.loss_ema, loss), _ema(state.dice_ema, dice)
            state.elapsed_s = base_elapsed + time.monotonic() - start
            bar.update(1)
            bar.set_postfix(loss=f"{state.loss_ema:.3f}", dice=f"{state.dice_ema:.3f}")
            if time.monotonic() - last_ckpt >= cfg.checkpoint_every_s:
                _save_checkpoint(net, opt, rng, cfg, state)
                save_weights(net, cfg, state, cfg.out)
                last_ckpt = time.monotonic()
                log.info("iteration %d: loss %.4f dice %.4f (%.0f s)", state.iteration,
                         state.loss_ema, state.dice_ema, state.elapsed_s)  # fmt: skip
    except KeyboardInterrupt:
        log.warning("interrupted at iteration %d: saving the checkpoint", state.iteration)
        _save_checkpoint(net, opt, rng, cfg, state)
        save_weights(net, cfg, state, cfg.out)
        raise
    finally:
        bar.close()
    _save_checkpoint(net, opt, rng, cfg, state)
    save_weights(net, cfg, state, cfg.out)
    log.info("done: %d iterations, loss %.4f, dice %.4f, %.0f s of training",
             state.iteration, state.loss_ema, state.dice_ema, state.elapsed_s)  # fmt: skip
    return state
