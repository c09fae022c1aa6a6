"""Interactive benchmark of medseg-interactive, LiteMedSAM and "box then refine" on the
held-out cases of ``../shared/data`` (``medseg.training.interactive.split``).

Uses :func:`medseg.bench.interactive.run_interactive` (the engine of ``medseg bench
interactive``) with one change: every model runs torch with one thread
(``num_threads=1``): on the busy 2-core machine 2 threads made LiteMedSAM's predictions
~20x slower. Protocols and settings are those of ``medseg bench interactive`` (seed 0, box
jitter 0.1, at most 8 targets per case, NoC cap 20)::

    .venv/bin/python benchmarks/interactive_bench.py --out bench_out/interactive \\
        --model medseg-interactive --protocol box+clicks:6 --protocol clicks:20

``--option KEY=VALUE`` passes options to medseg-interactive (e.g. ``tta=true``, or
``weights=PATH`` to evaluate a checkpoint before it is committed).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

log = logging.getLogger("medseg.bench.interactive_script")


def _factory(name: str, extra: dict | None = None):
    from medseg.inference import Predictor

    options = {
        "litemedsam": {"num_threads": 1, "backend": "onnx"},
        "medseg-interactive": {"num_threads": 1},
        "litemedsam+interactive": {
            "litemedsam": {"num_threads": 1, "backend": "onnx"},
            "interactive": {"num_threads": 1},
        },
    }.get(name, {})
    if extra and name in ("medseg-interactive", "auto"):
        options = {**options, **extra}
    return Predictor(name, progress=False, **options)


def main() -> None:
    from medseg.bench.interactive import run_interactive
    from medseg.bench.protocols import BenchConfig, make_protocol
    from medseg.training.interactive.split import write_heldout_view

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--shared", type=Path, default=shared)
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--protocol", action="append", required=True, help="NAME:MAX")
    parser.add_argument("--max-targets", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE",
        help="medseg-interactive option, e.g. tta=true or weights=/path/w.pt",
    )  # fmt: skip
    args = parser.parse_args()
    from medseg.cli.arguments import parse_model_option  # the rule of --model-option

    extra = {key: value for _, key, value in map(parse_model_option, args.option)}
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    protocols = []
    for spec in args.protocol:
        name, _, count = spec.partition(":")
        protocols.append(make_protocol(name, max_interactions=int(count or 10), box_jitter=0.1))
    config = BenchConfig(models=tuple(args.model), protocols=tuple(protocols), seed=args.seed,
                         max_targets_per_case=args.max_targets)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        data = write_heldout_view(args.shared, tmp)
        out = run_interactive(
            data, config, args.out, factory=lambda n: _factory(n, extra), progress=False
        )
    log.info("%s", out.table)


if __name__ == "__main__":
    main()
