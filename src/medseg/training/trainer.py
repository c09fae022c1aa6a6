"""Training loop of a plan: DynUNet + Dice/CE with deep supervision, poly LR, time budget.

The schedule is fitted to the time budget: after a few timed iterations the total number of
iterations is set to what the remaining budget allows at the measured speed, and refitted
after every epoch (so the poly learning rate reaches ~0 when the budget ends). Checkpoints
(``checkpoint_latest.pt`` every epoch, ``checkpoint_best.pt`` on a new best moving-average
pseudo-Dice, ``checkpoint_final.pt`` at the end) hold model, optimizer, iteration counters
and RNG states, so an interrupted run resumes where it stopped. Runs under ``torchrun``
unchanged (see :mod:`medseg.training.ddp`); only rank 0 writes files.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.automatic.plan import Plan
from medseg.errors import InputError
from medseg.io.atomic import atomic_path
from medseg.training.augment import extended_patch_size, intensity_augment, spatial_augment
from medseg.training.cache import load_preprocessed
from medseg.training.data import PatchSampler
from medseg.training.ddp import DistInfo, all_reduce_sum, broadcast_object
from medseg.training.losses import marginal_deep_supervision
from medseg.training.noise import NoiseRobustLoss
from medseg.training.pseudo_dice import class_counts, pseudo_dice
from medseg.training.semisup import build_semisup
from medseg.training.train_config import TrainConfig, TrainResult

__all__ = ["TrainConfig", "TrainResult", "Trainer"]

log = logging.getLogger(__name__)


def _poly_lr(lr0: float, it: int, total: int) -> float:
    return lr0 * (1 - min(it, total) / max(total, 1)) ** 0.9


class Trainer:
    """Train one fold of a plan from a preprocessed cache into ``out_dir``.

    ``annotated``: case id -> ``(K,)`` bools of the classes its label annotates, for
    partially labelled cases; when any case is partial, the loss is the marginal Dice/CE
    (:mod:`medseg.training.losses`) and pseudo-Dice skips the classes a case lacks.
    """

    def __init__(
        self,
        plan: Plan,
        cache_dir: str | Path,
        out_dir: str | Path,
        train_ids: list[str],
        val_ids: list[str],
        config: TrainConfig,
        dist: DistInfo | None = None,
        annotated: dict[str, list[bool]] | None = None,
    ) -> None:
        from monai.losses import DeepSupervisionLoss, DiceCELoss

        from medseg.automatic.network import build_network

        self.plan, self.cfg, self.dist = plan, config, dist or DistInfo()
        self.out = Path(out_dir)
        self.device = torch.device(self.dist.device)
        cache = Path(cache_dir)
        ann = annotated or {}
        self.train_cases = [load_preprocessed(cache, c, annotated=ann.get(c)) for c in train_ids]
        self.val_cases = [
            load_preprocessed(cache, c, annotated=ann.get(c)) for c in val_ids
        ] or self.train_cases
        self.partial = any(not all(ann[c]) for c in ann if c in {*train_ids, *val_ids})
        self.net_patch = plan.patch_size
        self.ext_patch = extended_patch_size(self.net_patch, config.augment)
        lead = (1,) if plan.sample_patch_size != plan.patch_size else ()
        self.rng = np.random.default_rng([config.seed, self.dist.rank])
        self.sampler = PatchSampler(
            self.train_cases, (*lead, *self.ext_patch), config.oversample_foreground, self.rng
        )
        self.gen = torch.Generator().manual_seed(config.seed * 1000 + self.dist.rank)
        with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG untouched
            torch.manual_seed(config.seed)
            net = build_network(plan, deep_supervision=config.deep_supervision)
        self.model = net.to(self.device)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=config.initial_lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=True,
        )
        dice_ce = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
        self.loss_fn = DeepSupervisionLoss(dice_ce, weight_mode="exp")
        self.noise = None if config.label_noise == "none" else NoiseRobustLoss(config.label_noise)
        self.ddp_model = self.model
        if self.dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_model = DistributedDataParallel(self.model, device_ids=ids)
        self.iteration, self.total, self.epoch_len = 0, self._initial_total(), 0
        self.elapsed, self.best_ema, self.ema = 0.0, -1.0, None
        self.history: list[dict[str, Any]] = []
        self._best_state: tuple[int, dict[str, Any]] | None = None
        self._last_save = time.perf_counter()
        self.semi = build_semisup(self, cache)  # --unlabeled: mean teacher + copy-paste

    # ---- schedule -----------------------------------------------------------------------
    def _initial_total(self) -> int:
        if self.cfg.iterations is not None:
            return self.cfg.iterations
        guess = int(self.cfg.time_budget_s / max(self.plan.estimated_iteration_s, 1e-6))
        return max(guess, self.cfg.timing_iterations + 2)

    def _sync_schedule(self, step_s: float, overhead_s: float = 0.0) -> None:
        """Refit total iterations (time mode) and epoch length from measured costs.

        ``step_s``: mean seconds per training step; ``overhead_s``: cost of the last epoch's
        validation and checkpoint. Epochs are made long enough that this overhead stays
        below 10% of training time. Rank 0's decision is broadcast so all ranks agree.
        """
        epoch_len = self.epoch_len or max(1, self._initial_total() // self.cfg.target_epochs)
        if self.cfg.time_budget_s is not None:
            remaining = self.cfg.time_budget_s - self.elapsed
            per_it = step_s + overhead_s / max(epoch_len, 1)
            total = self.iteration + max(0, int(remaining / max(per_it, 1e-6)))
            if not self.epoch_len:
                epoch_len = max(1, (total - self.iteration) // self.cfg.target_epochs)
        else:
            total = self.total
        if overhead_s > 0.1 * epoch_len * step_s:
            epoch_len = math.ceil(10 * overhead_s / max(step_s, 1e-6))
        self.total, self.epoch_len = broadcast_object(
            (max(total, self.iteration), epoch_len), self.dist
        )

    # ---- one step -----------------------------------------------------------------------
    def _batch(self, batch_size: int, sampler: PatchSampler, augment: bool) -> tuple[Any, Any]:
        img, lab = sampler.sample(batch_size)
        x, y = torch.from_numpy(img), torch.from_numpy(lab)
        if self.plan.sample_patch_size != self.plan.patch_size:  # 2D slices of 3D data
            x, y = x[:, :, 0], y[:, :, 0]
        if augment:
            x, y = spatial_augment(x, y, self.net_patch, self.cfg.augment, self.gen)
            x = intensity_augment(x, self.cfg.augment, self.gen)
        return x.to(self.device), y.to(self.device)

    def _loss(self, outs: Any, y: torch.Tensor, sampler: PatchSampler) -> torch.Tensor:
        if self.noise is not None and self.model.training:  # --label-noise (training.noise)
            ann = torch.from_numpy(sampler.annotated(self.plan.num_classes)).to(self.device)
            return self.noise(outs, y, ann, self.iteration / max(self.total, 1))
        if not self.partial:
            return self.loss_fn(outs, y)
        ann = torch.from_numpy(sampler.annotated(self.plan.num_classes)).to(self.device)
        return marginal_deep_supervision(outs, y, ann)

    def _step(self) -> float:
        x, y = self._batch(self.plan.batch_size, self.sampler, augment=True)
        if self.semi is not None:  # + copy-paste mixed labelled/unlabelled images
            x = torch.cat([x, self.semi.mixed_images(x, y)])
        for group in self.optimizer.param_groups:
            group["lr"] = _poly_lr(self.cfg.initial_lr, self.iteration, self.total)
        self.ddp_model.train()
        out = self.ddp_model(x)
        outs = list(torch.unbind(out, dim=1)) if out.ndim == x.ndim + 1 else out
        if self.semi is not None:
            outs, mixed = self.semi.split(outs)
        loss = self._loss(outs, y, self.sampler)
        if self.semi is not None:
            loss = loss + self.semi.loss(mixed)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        if self.semi is not None:
            self.semi.update_teacher()
        return float(loss.detach())

    @torch.no_grad()
    def _validate(self) -> dict[str, Any]:
        """Pseudo-Dice per class on fixed random validation patches (nnU-Net style,
        :mod:`medseg.training.pseudo_dice`)."""
        rng = np.random.default_rng([self.cfg.seed, 7, self.dist.rank])
        lead = (1,) if self.plan.sample_patch_size != self.plan.patch_size else ()
        sampler = PatchSampler(self.val_cases, (*lead, *self.net_patch), 0.5, rng)
        x, y = self._batch(self.cfg.val_patches, sampler, augment=False)
        self.model.eval()
        logits = self.model(x)
        loss = self._loss(logits, y, sampler)
        pred = logits.argmax(1)
        k = self.plan.num_classes
        ann = torch.from_numpy(sampler.annotated(k)).to(self.device)
        stats = all_reduce_sum(class_counts(pred, y[:, 0], ann, k), self.dist)
        loss_t = all_reduce_sum(torch.tensor([float(loss)]), self.dist) / self.dist.world_size
        dice = pseudo_dice(stats)
        finite = [d for d in dice if np.isfinite(d)]
        return {
            "val_loss": float(loss_t),
            "pseudo_dice": dice,
            "mean_pseudo_dice": float(np.mean(finite)) if finite else 0.0,
        }

    # ---- checkpoints --------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "iteration": self.iteration,
            "total_iterations": self.total,
            "epoch_len": self.epoch_len,
            "elapsed_s": self.elapsed,
            "best_ema": self.best_ema,
            "ema": self.ema,
            "history": self.history,
            "rng_numpy": self.rng.bit_generator.state,
            "rng_torch": self.gen.get_state(),
            "config": asdict(self.cfg),
            "plan": self.plan.to_dict(),
            "teacher": self.semi.state_dict() if self.semi is not None else None,
        }

    def save_checkpoint(self, name: str) -> Path | None:
        """Write ``out_dir/name`` atomically (rank 0 only); returns its path.

        Also writes ``checkpoint_best.pt`` (weights only) when a newer best is held in memory.
        """
        if not self.dist.is_main:
            return None
        path = self.out / name
        with atomic_path(path) as tmp:
            torch.save(self._state(), tmp)
        self._last_save = time.perf_counter()
        if self._best_state is not None:
            best = {"model": self._best_state[1], "iteration": self._best_state[0],
                    "best_ema": self.best_ema, "config": asdict(self.cfg),
                    "plan": self.plan.to_dict()}  # fmt: skip
            with atomic_path(self.out / "checkpoint_best.pt") as tmp:
                torch.save(best, tmp)
            self._best_state = None
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore model, optimizer, counters, history and RNG states."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no checkpoint to resume from")
        state = torch.load(path, map_location=self.device, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.iteration, self.total = int(state["iteration"]), int(state["total_iterations"])
        self.epoch_len, self.elapsed = int(state["epoch_len"]), float(state["elapsed_s"])
        self.best_ema, self.ema = float(state["best_ema"]), state["ema"]
        self.history = list(state["history"])
        if self.semi is not None:
            self.semi.load_state_dict(state.get("teacher"))
        if self.dist.is_main:
            self.rng.bit_generator.state = state["rng_numpy"]
            self.gen.set_state(state["rng_torch"])
        else:  # other ranks: a fresh stream that depends on where training resumes
            self.rng = self.sampler.rng = np.random.default_rng(
                [self.cfg.seed, self.dist.rank, self.iteration]
            )
        log.info("resumed %s at iteration %d of %d", path, self.iteration, self.total)

    # ---- epochs -------------------------------------------------------------------------
    def _end_epoch(self, losses: list[float]) -> None:
        val = self._validate()
        dice = val["mean_pseudo_dice"]
        self.ema = dice if self.ema is None else 0.9 * self.ema + 0.1 * dice
        entry = {
            "epoch": len(self.history),
            "iteration": self.iteration,
            "train_loss": float(np.mean(losses)) if losses else float("nan"),
            "lr": _poly_lr(self.cfg.initial_lr, self.iteration, self.total),
            "elapsed_s": round(self.elapsed, 3),
            "ema_pseudo_dice": self.ema,
            **val,
        }
        self.history.append(entry)
        if self.dist.is_main:
            if self.ema > self.best_ema:  # kept in memory, written with the next checkpoint
                self.best_ema = self.ema
                weights = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
                self._best_state = (self.iteration, weights)
            # checkpoints are tens of MB: at most one per checkpoint_every_s (and at the end)
            if time.perf_counter() - self._last_save >= self.cfg.checkpoint_every_s:
                self.save_checkpoint("checkpoint_latest.pt")
            self._write_log(curve=len(self.history) % 10 == 0)

    def _write_log(self, curve: bool) -> None:
        from medseg.training.report import plot_training_curve

        with atomic_path(self.out / "training_log.json") as tmp:
            tmp.write_text(json.dumps(self.history, indent=1) + "\n")
        if curve:  # plotting costs ~0.2 s: every 10th epoch and at the end
            plot_training_curve(self.history, self.out / "training_curve.png")

    def train(self, *, resume: bool = False) -> TrainResult:
        """Run (or continue) training until the schedule or ``stop_after`` ends it."""
        from tqdm import tqdm

        self.out.mkdir(parents=True, exist_ok=True)
        if resume:
            self.load_checkpoint(self.out / "checkpoint_latest.pt")
        elif self.dist.is_main:
            with atomic_path(self.out / "train_config.json") as tmp:
                tmp.write_text(json.dumps(asdict(self.cfg), indent=2) + "\n")
        if self.cfg.iterations is not None and not self.epoch_len:
            self._sync_schedule(0.0)
        bar = tqdm(
            total=self.total,
            initial=self.iteration,
            desc=f"train fold {self.cfg.fold}",
            unit="it",
            disable=not self.dist.is_main,
        )
        try:
            self._loop(bar)
        except KeyboardInterrupt:
            self.save_checkpoint("checkpoint_latest.pt")
            raise
        finally:
            bar.close()
        finished = self.iteration >= self.total
        if finished:
            self.save_checkpoint("checkpoint_latest.pt")
            self.save_checkpoint("checkpoint_final.pt")
            if self.dist.is_main:
                self._write_log(curve=True)
        return TrainResult(
            self.iteration, self.total, self.elapsed, finished, self.best_ema, list(self.history)
        )

    def _loop(self, bar: Any) -> None:
        start, losses, step_times = self.iteration, [], []
        next_epoch = self.iteration + self.epoch_len if self.epoch_len else None
        while self.iteration < self.total:
            t0 = time.perf_counter()
            losses.append(self._step())
            dt = time.perf_counter() - t0
            self.iteration += 1
            self.elapsed += dt
            bar.update(1)
            done = self.iteration - start
            if done > 1:  # the first step pays one-off costs
                step_times.append(dt)
            if next_epoch is None and done == self.cfg.timing_iterations + 1:
                self._sync_schedule(float(np.mean(step_times)))
                next_epoch = self.iteration + self.epoch_len
            if next_epoch is not None and self.iteration >= min(next_epoch, self.total):
                t1 = time.perf_counter()
                self._end_epoch(losses)
                overhead = time.perf_counter() - t1
                self.elapsed += overhead
                self._sync_schedule(float(np.mean(step_times[-self.epoch_len :] or [dt])), overhead)
                next_epoch = self.iteration + self.epoch_len
                last, losses = self.history[-1], []
                # the refit may have ended the run here (budget spent): log the refitted lr
                last["lr"] = _poly_lr(self.cfg.initial_lr, self.iteration, self.total)
                bar.total = self.total
                bar.set_postfix(
                    loss=f"{last['train_loss']:.3f}", dice=f"{last['mean_pseudo_dice']:.3f}"
                )
            if self.cfg.stop_after is not None and done >= self.cfg.stop_after:
                self.save_checkpoint("checkpoint_latest.pt")
                return
