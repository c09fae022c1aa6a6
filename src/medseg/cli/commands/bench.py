"""``medseg bench interactive``: compare promptable models with simulated interactions;
``medseg bench text``: text prompts (:mod:`medseg.bench.text`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from medseg.cli.arguments import model_options, parse_model_option

NAME = "bench"
HELP = "benchmark promptable models with simulated users (boxes, clicks, scribbles)"

log = logging.getLogger(__name__)

_PROTOCOLS = ("box", "clicks", "box+clicks", "scribble", "cvpr24", "cvpr25")


def _data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "data",
        nargs="+",
        type=Path,
        metavar="DATA",
        help="dataset folder(s): images/ + labels/, or nnU-Net imagesTr/ + labelsTr/",
    )
    g = p.add_argument_group("data and targets")
    g.add_argument("--limit", type=int, metavar="N", help="at most N cases per dataset")
    g.add_argument(
        "--max-targets", type=int, metavar="N", help="at most N targets per case (a seeded sample)"
    )
    g.add_argument(
        "--components",
        action="store_true",
        help="each connected component of a class is its own target",
    )
    kind = g.add_mutually_exclusive_group()
    kind.add_argument(
        "--instances",
        action="store_true",
        default=None,
        help="labels are instance maps (default: manifest 'task', else semantic)",
    )
    kind.add_argument(
        "--semantic",
        dest="instances",
        action="store_false",
        default=None,
        help="labels are semantic classes",
    )
    g.add_argument(
        "--min-area",
        type=int,
        default=1,
        metavar="PX",
        help="skip targets smaller than PX pixels (default 1)",
    )
    g.add_argument("--volume", action="store_true",
                   help="3D cases, box-only protocols: prompt the whole volume with a 3D box "
                   "(box3d) instead of 2D on the largest slice")  # fmt: skip


def _run_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models and protocols")
    g.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="NAME",
        help="registered model name (repeat to compare models)",
    )
    g.add_argument(
        "--protocol",
        action="append",
        choices=_PROTOCOLS,
        metavar="P",
        help=f"one of {', '.join(_PROTOCOLS)} (repeatable; default box)",
    )
    g.add_argument(
        "--max-interactions",
        type=int,
        default=10,
        metavar="N",
        help="interactions per target, the first prompt included (default 10)",
    )
    g.add_argument(
        "--box-jitter",
        type=float,
        default=0.1,
        metavar="F",
        help="each box side moves by up to F x the box size (default 0.1)",
    )
    g.add_argument(
        "--no-mask-input",
        action="store_true",
        help="do not pass the previous prediction back as mask_input",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    g.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="cases run in parallel, one Predictor per job (default 1)",
    )
    g.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch CPU threads of every model with a num_threads option (nested for "
        "litemedsam+interactive); default: each model's own (the recorded benchmarks use 1)",
    )
    g.add_argument(
        "--model-option",
        action="append",
        type=parse_model_option,
        metavar="[MODEL:]KEY=VALUE",
        help="an option of Predictor(MODEL, KEY=VALUE), repeatable; without MODEL for every "
        "--model (e.g. litemedsam-clicks:decoder_weights=weights.pt, tta=false)",
    )


def _output_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("metrics and outputs")
    g.add_argument(
        "--nsd-tolerance",
        type=float,
        default=2.0,
        metavar="MM",
        help="NSD tolerance in mm (default 2)",
    )
    g.add_argument(
        "--noc-metric",
        choices=("dice", "iou"),
        default="dice",
        help="metric the NoC thresholds apply to (default dice)",
    )
    g.add_argument(
        "--noc-cap",
        type=int,
        default=20,
        metavar="N",
        help="NoC of a target that never reaches the threshold (default 20)",
    )
    g.add_argument(
        "--out",
        type=Path,
        default=Path("bench_out"),
        metavar="DIR",
        help="output folder (default bench_out)",
    )
    g.add_argument("--gallery-size", type=int, default=6, metavar="N",
                   help="worst targets shown per model and protocol (default 6)")  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    p = sub.add_parser(
        "interactive",
        help="Dice/NSD after each simulated interaction, NoC, latency and memory per model",
        description="Run each model through simulated interactions on every target (class, "
        "instance or component) of the datasets and write results.json, results.csv, "
        "dice_vs_interactions.png and worst-case galleries into --out. See docs/bench.md.",
    )
    _data_arguments(p)
    _run_arguments(p)
    _output_arguments(p)
    _text_parser(sub)


def _text_parser(sub: Any) -> None:
    t = sub.add_parser(
        "text",
        help="Dice from a phrase alone and after correction clicks, not-found rate on absent "
        "targets, synonyms, time to the first mask",
        description="Segment every named target of the datasets from its label name "
        "(predict(text=...)), correct it with simulated clicks, ask for targets the images do "
        "not show, and write results.json and text_dice.png into --out. See docs/bench.md.",
    )
    t.add_argument(
        "data",
        nargs="+",
        type=Path,
        metavar="DATA",
        help="dataset folder(s) with named labels (manifest.json or dataset.json)",
    )
    t.add_argument(
        "--model",
        default="litemedsam+interactive",
        metavar="NAME",
        help="promptable model with LiteMedSAM's encoder (default litemedsam+interactive)",
    )
    t.add_argument(
        "--text-weights",
        type=Path,
        metavar="FILE",
        help="text head weights (default: the bundled medseg_text.pt)",
    )
    t.add_argument(
        "--clicks",
        type=int,
        default=3,
        metavar="N",
        help="correction clicks after the text mask (default 3)",
    )
    t.add_argument(
        "--synonyms",
        type=int,
        default=2,
        metavar="N",
        help="other names of each target also tried (default 2)",
    )
    t.add_argument(
        "--absent",
        type=int,
        default=3,
        metavar="N",
        help="absent targets asked per image (default 3)",
    )
    t.add_argument("--limit", type=int, metavar="N", help="at most N cases per dataset")
    t.add_argument(
        "--max-targets", type=int, metavar="N", help="at most N targets per case (a seeded sample)"
    )
    t.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    t.add_argument("--text-prior", action="store_true",
                   help="also try the anatomical prior where the text head finds none")  # fmt: skip
    t.add_argument("--out", type=Path, default=Path("bench_text"), metavar="DIR",
                   help="output folder (default bench_text)")  # fmt: skip


def _config(args: argparse.Namespace):
    import dataclasses

    from medseg.bench import BenchConfig, make_protocol

    protocols = []
    for name in dict.fromkeys(args.protocol or ["box"]):
        proto = make_protocol(
            name, max_interactions=args.max_interactions, box_jitter=args.box_jitter,
            nsd_tolerance_mm=args.nsd_tolerance,
        )  # fmt: skip
        if args.no_mask_input:
            proto = dataclasses.replace(proto, use_mask_input=False)
        if name in ("cvpr24", "cvpr25"):
            log.info("%s: challenge settings are fixed (see docs/bench.md)", name)
        protocols.append(proto)
    return BenchConfig(
        models=tuple(dict.fromkeys(args.model)), protocols=tuple(protocols), seed=args.seed,
        limit=args.limit, max_targets_per_case=args.max_targets, components=args.components,
        instances=args.instances, min_area=args.min_area, volume=args.volume,
        noc_metric=args.noc_metric, noc_cap=args.noc_cap, jobs=args.jobs,
        gallery_size=args.gallery_size, threads=args.threads,
        model_options=model_options(args.model_option, list(dict.fromkeys(args.model))),
    )  # fmt: skip


def _run_text(args: argparse.Namespace) -> int:
    from medseg.bench.text import TextBenchConfig, run_text_bench

    config = TextBenchConfig(
        model=args.model, clicks=args.clicks, synonyms=args.synonyms,
        absent_per_image=args.absent, limit=args.limit, max_targets=args.max_targets,
        seed=args.seed, text_weights=None if args.text_weights is None else str(args.text_weights),
        text_prior=args.text_prior,
    )  # fmt: skip
    quiet = logging.getLogger("medseg").level > logging.INFO
    payload = run_text_bench(args.data, config, args.out, progress=not quiet,
                             command=["medseg", *sys.argv[1:]])  # fmt: skip
    print(payload["table"])
    for s in payload["skipped"][:20]:
        log.warning("skipped %s %s %s: %s", s["dataset"], s["case"], s.get("target", ""),
                    s["reason"])  # fmt: skip
    log.info("wrote %s", args.out / "results.json")
    if not payload["targets"]:
        log.error("medseg bench text: no target was evaluated (see the skipped list above)")
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    from medseg.bench import run_interactive

    if args.bench_command == "text":
        return _run_text(args)
    config = _config(args)
    quiet = logging.getLogger("medseg").level > logging.INFO
    result = run_interactive(
        args.data, config, args.out, progress=not quiet, command=["medseg", *sys.argv[1:]]
    )
    print(result.table)
    for key, path in result.files.items():
        log.info("wrote %s (%s)", path, key)
    if result.evaluated == 0:
        log.error("medseg bench: no target was evaluated (see the skipped list above)")
        return 1
    return 0
