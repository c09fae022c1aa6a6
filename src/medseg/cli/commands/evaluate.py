"""``medseg evaluate``: Dice, IoU, HD95, ASSD and NSD of predictions against references."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any

NAME = "evaluate"
HELP = "score predicted label maps against reference label maps (files or folders)"

log = logging.getLogger(__name__)

_COLUMNS = ("dice", "iou", "hd95", "assd", "nsd")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred", type=Path, help="prediction file or folder")
    parser.add_argument("gt", type=Path, help="reference (ground-truth) file or folder")
    parser.add_argument(
        "--labels",
        type=int,
        nargs="+",
        metavar="L",
        help="label values to score (default: per case, all non-zero labels "
        "of prediction and reference)",
    )
    parser.add_argument(
        "--nsd-tolerance",
        type=float,
        default=2.0,
        metavar="MM",
        help="NSD tolerance in mm (default 2)",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="score reference cases without a prediction as empty predictions",
    )
    parser.add_argument(
        "--geometry-tolerance",
        type=float,
        default=1e-3,
        metavar="TOL",
        help="allowed spacing/origin (mm) and direction difference (default 1e-3)",
    )
    parser.add_argument(
        "--label-names",
        type=Path,
        metavar="FILE",
        help='JSON {"1": "spleen", ...} or an nnU-Net dataset.json (its "labels"); overrides '
        "names stored in the label files",
    )
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write per-case rows here")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the summary here")


def _cell(stats: dict[str, Any]) -> str:
    mean, std = stats["mean"], stats["std"]
    if not math.isfinite(mean):
        return "-"
    text = f"{mean:.3f} ± {std:.3f}"
    return text + "*" if stats.get("n_capped") else text


def format_table(summary: dict[str, Any]) -> str:
    """Per-class ``mean ± std`` table (``*`` marks columns with capped infinite distances)."""
    header = ["label", "name", "n", *_COLUMNS]
    lines = []
    for label, entry in summary["per_class"].items():
        lines.append(
            [
                str(label),
                entry["name"][:24],
                str(entry["n_cases"]),
                *(_cell(entry[m]) for m in _COLUMNS),
            ]
        )
    overall = summary["overall"]
    lines.append(
        ["all", "(pooled)", str(overall[_COLUMNS[0]]["n"]), *(_cell(overall[m]) for m in _COLUMNS)]
    )
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*row) for row in lines]
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    from medseg.metrics.evaluate import (
        EvaluationConfig,
        evaluate_paths,
        load_label_names,
        write_csv,
        write_json,
    )

    names = load_label_names(args.label_names) if args.label_names else {}
    config = EvaluationConfig(
        label_names=tuple(names.items()),
        labels=tuple(args.labels) if args.labels else None,
        nsd_tolerance_mm=args.nsd_tolerance,
        allow_missing=args.allow_missing,
        geometry_atol=args.geometry_tolerance,
    )
    result = evaluate_paths(args.pred, args.gt, config)
    summary = result.summary
    print(
        f"{summary['n_cases']} case(s), NSD tolerance {config.nsd_tolerance_mm:g} mm, "
        "distances in mm, mean ± std"
    )
    print(format_table(summary))
    capped = sum(summary["overall"][m]["n_capped"] for m in ("hd95", "assd"))
    if capped:
        print(
            f"* {capped} infinite HD95/ASSD value(s) (one mask empty) capped at the grid diagonal"
        )
    for key, what in (
        ("missing_predictions", "scored as empty (no prediction)"),
        ("unmatched_predictions", "prediction(s) without reference, not scored"),
    ):
        if summary[key]:
            print(f"{len(summary[key])} {what}: {', '.join(summary[key])}")
    if args.csv:
        log.info("wrote %s", write_csv(result.rows, args.csv))
    if args.json:
        log.info("wrote %s", write_json(summary, args.json))
    return 0
