"""Fine-tune LiteMedSAM's prompt encoder + mask decoder for clicks on cached embeddings.

    nice -n 10 python benchmarks/train_foundation_clicks.py --cache /work/cache/clicks \
        --out litemedsam_clicks.pt --time-budget 2700 --threads 2

The cache comes from ``benchmarks/foundation_clicks_cache.py`` (the ``"train"`` group of
``medseg.training.foundation.split.LEAVE_OUT_GROUPS``). Writes the fp16 weights to ``--out``
(checkpointed every ``--checkpoint-every`` seconds) and ``--out``.json with this command,
the data and the settings. Recipe: :mod:`medseg.training.foundation.trainer`.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

from medseg.training.foundation.data import ClickCache
from medseg.training.foundation.split import LEAVE_OUT_GROUPS
from medseg.training.foundation.trainer import (
    FoundationTrainConfig,
    build_net,
    load_decoder,
    train,
)


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=Path("/work/cache/clicks"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--time-budget", type=float, default=2700.0, help="seconds")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--max-corrections", type=int, default=5)
    ap.add_argument("--p-box", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--init", type=Path, default=None, help="weights to continue from")
    ap.add_argument("--warmup", type=int, default=20, help="warm-up steps")
    ap.add_argument("--prompt-lr-mult", type=float, default=1.0)
    ap.add_argument("--last-round-loss", action="store_true", help="loss on the last round only")
    ap.add_argument("--checkpoint-every", type=float, default=300.0, help="seconds")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cache = ClickCache(args.cache, datasets=LEAVE_OUT_GROUPS["train"])
    cfg = FoundationTrainConfig(
        time_budget_s=args.time_budget, max_steps=args.max_steps, batch_size=args.batch_size,
        lr=args.lr, max_corrections=args.max_corrections, p_box=args.p_box, seed=args.seed,
        num_threads=args.threads, checkpoint_every_s=args.checkpoint_every,
        warmup_steps=args.warmup, prompt_lr_mult=args.prompt_lr_mult,
        loss_every_round=not args.last_round_loss,
    )  # fmt: skip
    per_ds = Counter(cache.meta[t.index]["dataset"] for t in cache.targets)
    meta = {
        "command": "python benchmarks/train_foundation_clicks.py " + shlex.join(sys.argv[1:]),
        "cache": "python benchmarks/foundation_clicks_cache.py --data ../shared/data "
        "--out /work/cache/clicks --num-threads 2",
        "git_commit": _commit(),
        "samples": len(cache.meta),
        "targets_per_dataset": dict(sorted(per_ds.items())),
        "train_group": list(LEAVE_OUT_GROUPS["train"]),
        "left_out_group": list(LEAVE_OUT_GROUPS["left_out"]),
    }
    net = build_net()
    if args.init is not None:
        load_decoder(net, args.init)
        meta["init"] = str(args.init)
    result = train(cache, cfg, args.out, net=net, meta=meta)
    logging.info("%d steps in %.0f s -> %s", result.steps, result.seconds, args.out)


if __name__ == "__main__":
    main()
