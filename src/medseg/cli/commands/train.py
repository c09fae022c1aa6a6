"""``medseg train interactive``: train the ``medseg-interactive`` model with simulated
interactions (see :mod:`medseg.training.interactive`); ``medseg train soup``: average
weight files (:mod:`medseg.training.interactive.soup`)."""

from __future__ import annotations

import argparse
import logging

from medseg.cli.arguments import parse_duration

NAME = "train"
HELP = "train a model: 'medseg train interactive --data DIR --out weights.pt'"

__all__ = ["NAME", "HELP", "add_arguments", "run"]

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="model", metavar="MODEL", required=True)
    p = sub.add_parser("interactive", help="medseg-interactive (clicks, scribbles, box, mask)")
    p.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="DIR",
        help="dataset folder (images/ + labels/) or a folder of them; repeatable",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="final weights file (.pt)")
    p.add_argument("--checkpoint", metavar="FILE", help="checkpoint file (default OUT.ckpt)")
    p.add_argument("--time-budget", type=parse_duration, default="2h",
                   help="training time of this run (default 2h)")  # fmt: skip
    p.add_argument("--max-iterations", type=int, help="stop at this total iteration count")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    p.add_argument("--init", metavar="WEIGHTS", help="start from a weights file (fresh optimiser)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="train on the CPU or a CUDA GPU (default %(default)s)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0,
                   help="seed of sampling and weight init (default %(default)s)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=8,
                   help="samples per training step (default %(default)s)")  # fmt: skip
    p.add_argument("--lr", type=float, default=1e-3,
                   help="AdamW learning rate, cosine peak (default %(default)s)")  # fmt: skip
    p.add_argument(
        "--lr-schedule", choices=("constant", "cosine"), default="cosine",
        help="cosine: anneal the learning rate over this run's budget (default)",
    )  # fmt: skip
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument(
        "--max-corrections", type=int, default=4,
        help="simulated correction rounds per sample: uniform 0..N (default 4)",
    )  # fmt: skip
    p.add_argument("--checkpoint-every", type=parse_duration, default="5m",
                   help="checkpoint interval (default 5m)")  # fmt: skip
    p.add_argument(
        "--no-holdout",
        action="store_true",
        help="also train on the held-out evaluation cases (not for benchmarks)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")  # fmt: skip
    soup = sub.add_parser("soup", help="average medseg-interactive weight files (model soup)")
    soup.add_argument("weights", nargs="+", metavar="WEIGHTS", help="weights files (.pt)")
    soup.add_argument("--out", required=True, metavar="FILE", help="averaged weights file")
    soup.add_argument("--mix", type=float, nargs="+", help="one weight per file (default equal)")


def run(args: argparse.Namespace) -> int:
    if args.model == "soup":
        from medseg.training.interactive.soup import average_weights

        average_weights(args.weights, args.out, args.mix)
        log.info("weights: %s", args.out)
        return 0
    from medseg.training.interactive import InteractiveTrainConfig, is_held_out, train
    from medseg.training.interactive.data import load_sources

    cfg = InteractiveTrainConfig(
        data=tuple(args.data),
        out=args.out,
        checkpoint=args.checkpoint,
        time_budget_s=args.time_budget,
        max_iterations=args.max_iterations,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_schedule=args.lr_schedule,
        seed=args.seed,
        device=args.device,
        checkpoint_every_s=args.checkpoint_every,
        holdout=not args.no_holdout,
        threads=args.threads,
        init=args.init,
        max_corrections=args.max_corrections,
    )
    keep = (lambda d, c: not is_held_out(d, c)) if cfg.holdout else (lambda d, c: True)
    sources = load_sources(cfg.data, keep)
    log.info("training on %d image sources; config %s", len(sources), cfg.to_json())
    state = train(cfg, sources, resume=args.resume, progress=not args.no_progress)
    log.info("weights: %s (%d iterations)", cfg.out, state.iteration)
    return 0
