"""The options of a trained ``medseg auto`` model at prediction time, shared by
``medseg auto predict``, ``medseg segment --model MODEL_DIR`` and ``medseg serve
--auto-model MODEL_DIR`` so that every door predicts the same way."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_auto_predict_options", "auto_predict_options"]


def add_auto_predict_options(p: argparse.ArgumentParser) -> None:
    """``--folds``, ``--checkpoint``, ``--tta``, ``--postprocess``, ``--overlap``."""
    g = p.add_argument_group("automatic model (a medseg auto model folder)")
    g.add_argument("--folds", nargs="+", help="folds to ensemble (default: all trained)")
    g.add_argument(
        "--checkpoint", choices=("final", "best", "latest"), default="final",
        help="which checkpoint of each fold to load (default final)",
    )  # fmt: skip
    g.add_argument(
        "--auto-tta", "--tta", dest="auto_tta", action="store_true",
        help="average the automatic model over mirrored inputs (slower, often better)",
    )  # fmt: skip
    g.add_argument(
        "--postprocess", choices=("auto", "on", "off"), default="auto",
        help="largest-component post-processing: auto = as validation chose it "
        "(postprocessing.json), on/off = force it for every class",
    )  # fmt: skip
    g.add_argument(
        "--overlap", type=float, default=0.5,
        help="sliding-window overlap in [0, 1) (default 0.5)",
    )  # fmt: skip


def auto_predict_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`medseg.automatic.model.PredictConfig` fields the options set."""
    return {
        "folds": tuple(args.folds) if args.folds else None,
        "checkpoint": args.checkpoint,
        "tta": args.auto_tta,
        "overlap": args.overlap,
        "postprocess": args.postprocess,
    }
