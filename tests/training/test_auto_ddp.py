"""``medseg auto train`` under ``torchrun`` with two CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from medseg.automatic.plan import PlanBudget, save_plan
from medseg.data.nnunet import read_dataset
from medseg.training.fingerprint import compute_fingerprint
from medseg.training.planning import plan_experiment
from medseg.training.synthetic import write_disk_dataset


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path: Path) -> None:
    root = write_disk_dataset(tmp_path / "ds", 4, (32, 32))
    plan = plan_experiment(compute_fingerprint(read_dataset(root)), PlanBudget(time_budget_s=60))
    model = tmp_path / "model"
    save_plan(replace(plan, batch_size=2), model / "plans.json")  # skip the speed measurement
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        "-m",
        "medseg",
        "auto",
        "train",
        str(root),
        "--out",
        str(model),
        "--iterations",
        "4",
        "--fold",
        "0",
        "--threads",
        "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rank 0 of 2 (gloo)" in proc.stderr and "rank 1 of 2 (gloo)" in proc.stderr
    assert proc.stdout.count("finished at iteration 4/4") == 1  # only rank 0 reports
    state = torch.load(model / "fold_0" / "checkpoint_final.pt", weights_only=False)
    assert state["iteration"] == 4
    log = json.loads((model / "fold_0" / "training_log.json").read_text())
    assert log[-1]["iteration"] == 4 and 0.0 <= log[-1]["mean_pseudo_dice"] <= 1.0
