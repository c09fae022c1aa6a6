"""nnU-Net v2 trainer that stops at a wall-clock deadline (for ``auto_vs_nnunet.py``).

Copied by the benchmark into ``nnunetv2/training/nnUNetTrainer/variants/`` of the nnU-Net
virtual environment (nnU-Net finds trainer classes only inside its package); it imports
nnunetv2 and is not part of medseg.

Same network, plan, data augmentation, loss and optimiser as ``nnUNetTrainer``; changed:

- the run ends at the Unix time in ``NNUNET_BUDGET_DEADLINE`` (checked before every
  iteration against the measured time of one iteration, epoch overheads included);
- epochs last about 30 s (the first has 5 iterations; then ~30 s worth) with one validation
  batch, so the per-epoch logging/plotting overhead stays small;
- the poly learning rate ``lr0 * (1 - it / total) ** 0.9`` is set per iteration, ``total``
  refitted after every epoch from the measured speed so that it reaches 0 at the deadline;
- the post-training validation of all cases is skipped (the benchmark predicts test cases).
"""

import json
import os
import time

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class nnUNetTrainerBudget(nnUNetTrainer):  # nnU-Net's naming
    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device("cuda"),  # noqa: B008 - nnU-Net's signature
    ):
        # nnU-Net records its __init__ arguments through locals(): same signature
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_iterations_per_epoch = 5
        self.num_val_iterations_per_epoch = 1
        self.deadline = float(os.environ["NNUNET_BUDGET_DEADLINE"])
        self.budget_iterations = 0

    def perform_actual_validation(self, save_probabilities: bool = False):
        self.print_to_log_file("budget trainer: final validation skipped")

    def _set_lr(self, total: float) -> None:
        lr = self.initial_lr * max(0.0, 1.0 - self.budget_iterations / total) ** 0.9
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _epoch(self, total: float, iter_s: float | None) -> bool:
        """One epoch; returns False when the deadline stopped it early."""
        self.on_epoch_start()
        self.on_train_epoch_start()
        outputs, stopped = [], False
        for _ in range(self.num_iterations_per_epoch):
            if iter_s is not None and time.time() + iter_s > self.deadline:
                stopped = True
                break
            self._set_lr(total)
            t0 = time.time()
            outputs.append(self.train_step(next(self.dataloader_train)))
            self.budget_iterations += 1
            if iter_s is None:  # first epoch: the first step's time stands in
                iter_s = time.time() - t0
        if outputs:
            self.on_train_epoch_end(outputs)
            with torch.no_grad():
                self.on_validation_epoch_start()
                val = [self.validation_step(next(self.dataloader_val))]
                self.on_validation_epoch_end(val)
            self.on_epoch_end()
        return not stopped and bool(outputs)

    def run_training(self):
        self.on_train_start()
        t_start = time.time()
        total, iter_s = 1e9, None
        while time.time() < self.deadline:
            t0, it0 = time.time(), self.budget_iterations
            if not self._epoch(total, iter_s):
                break
            per_it = (time.time() - t0) / max(1, self.budget_iterations - it0)
            iter_s = per_it if iter_s is None else 0.5 * (iter_s + per_it)
            left = max(0.0, self.deadline - time.time())
            total = self.budget_iterations + max(1.0, left / iter_s)
            self.num_iterations_per_epoch = int(np.clip(round(30.0 / iter_s), 5, 250))
            self.print_to_log_file(
                f"budget: {self.budget_iterations} it, {iter_s:.2f} s/it, "
                f"planned total {total:.0f}, {left:.0f} s left"
            )
        self.on_train_end()
        info = {"iterations": self.budget_iterations, "train_s": time.time() - t_start,
                "epochs": self.current_epoch}  # fmt: skip
        with open(os.path.join(self.output_folder, "budget_info.json"), "w") as fh:
            json.dump(info, fh)
