"""``--init OLD_MODEL [--init-lr LR]`` of ``medseg auto train`` and ``medseg auto run``:
fine-tune from a trained model's weights (:mod:`medseg.training.init_weights`)."""

from __future__ import annotations

import argparse
from typing import Any

from medseg.errors import InputError

__all__ = ["add_init_options", "init_options"]


def add_init_options(p: argparse.ArgumentParser) -> None:
    """Register ``--init`` and ``--init-lr``."""
    p.add_argument(
        "--init", metavar="OLD_MODEL", default=None,
        help="fine-tune from a trained medseg auto model (its folder with one trained fold, "
        "or OLD_MODEL/fold_N): its plan is reused and its final (else best) weights start "
        "the training; the old folder is only read",
    )  # fmt: skip
    p.add_argument(
        "--init-lr", type=float, default=None, metavar="LR",
        help="with --init: initial learning rate of the poly schedule (default 1e-2, as "
        "from scratch; lower rates measured worse on a short fine-tune)",
    )  # fmt: skip


def init_options(args: argparse.Namespace) -> tuple[Any, dict[str, float]]:
    """``(InitSource or None, TrainConfig overrides)``; ``--init-lr`` alone is an error."""
    init = getattr(args, "init", None)
    lr = getattr(args, "init_lr", None)
    if init is None:
        if lr is not None:
            raise InputError("--init-lr only applies with --init")
        return None, {}
    from medseg.training.init_weights import INIT_LR, resolve_init

    if lr is not None and not lr > 0:
        raise InputError(f"--init-lr must be positive, got {lr}")
    return resolve_init(init), {"initial_lr": INIT_LR if lr is None else lr}
