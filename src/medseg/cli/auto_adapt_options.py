"""The ``--adapt*`` options of ``medseg auto predict`` (test-time adaptation,
:mod:`medseg.automatic.adapt`)."""

from __future__ import annotations

import argparse
from typing import Any

from medseg.cli.arguments import parse_duration


def add_adapt_options(p: argparse.ArgumentParser) -> None:
    """Add ``--adapt`` and its settings to the ``auto predict`` parser ``p``."""
    p.add_argument(
        "--adapt", action="store_true",
        help="test-time adaptation (TENT): per image, minimise the prediction entropy over "
        "the normalisation layers' scale/shift of a copy of the model (weights on disk unchanged)",
    )  # fmt: skip
    p.add_argument(
        "--adapt-steps", type=int, default=None, metavar="N",
        help="with --adapt: optimiser steps per fold and image (default 10)",
    )  # fmt: skip
    p.add_argument(
        "--adapt-time", type=parse_duration, default=60.0, metavar="DURATION",
        help="with --adapt: time bound per image, e.g. 30s (default 60s)",
    )  # fmt: skip
    p.add_argument(
        "--adapt-lr", type=float, default=None, metavar="LR",
        help="with --adapt: Adam learning rate of the adaptation (default: AdaptConfig's)",
    )  # fmt: skip
    p.add_argument(
        "--adapt-balance", type=float, default=None, metavar="W",
        help="with --adapt: weight of the class-balance term, KL(mean prediction || training "
        "class frequencies from MODEL/fingerprint.json); 0 = entropy only (default 1)",
    )  # fmt: skip
    p.add_argument(
        "--adapt-consistency", type=float, default=None, metavar="W",
        help="with --adapt: weight of the mirror-consistency term; 0 = none (default 0)",
    )  # fmt: skip
    p.add_argument(
        "--adapt-agreement", type=float, default=None, metavar="A",
        help="with --adapt: keep an image's adapted copy only when the objective fell and "
        "its labels agree with the trained model's (mean foreground Dice) by >= A; 0 = "
        "always keep (default 0)",
    )  # fmt: skip


def adapt_config(args: argparse.Namespace) -> Any:
    """The :class:`~medseg.automatic.adapt.AdaptConfig` of the parsed ``--adapt*`` options
    (an option left out keeps the config's default)."""
    from medseg.automatic.adapt import AdaptConfig

    given: dict[str, Any] = {"max_seconds": args.adapt_time}
    if args.adapt_steps is not None:
        given["steps"] = args.adapt_steps
    if args.adapt_lr is not None:
        given["lr"] = args.adapt_lr
    if args.adapt_balance is not None:
        given["balance"] = args.adapt_balance
    if args.adapt_consistency is not None:
        given["consistency"] = args.adapt_consistency
    if args.adapt_agreement is not None:
        given["min_agreement"] = args.adapt_agreement
        given["reject_worse"] = args.adapt_agreement > 0
    return AdaptConfig(**given)
