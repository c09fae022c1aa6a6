"""``medseg fuse``: fuse several raters' label folders into one label per case.

Examples::

    medseg fuse rater_a/ rater_b/ rater_c/ -o fused/                 # STAPLE (default)
    medseg fuse rater_a/ rater_b/ rater_c/ -o fused/ --method vote   # majority vote

Thin wrapper over :func:`medseg.data.fusion.fuse_folders` (rules, tie rule and agreement
columns are documented there and in docs/auto.md).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

NAME = "fuse"
HELP = "fuse several raters' label folders (STAPLE or majority vote) with an agreement table"

__all__ = ["NAME", "HELP", "add_arguments", "run"]

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "raters", type=Path, nargs="+", metavar="RATER_DIR",
        help="one folder of label files per rater, same case names in each (at least 2)",
    )  # fmt: skip
    parser.add_argument(
        "-o", "--out", type=Path, required=True, metavar="OUT",
        help="output folder: one fused label per case, named and formatted like the inputs",
    )  # fmt: skip
    parser.add_argument(
        "--method", choices=("staple", "vote"), default="staple",
        help="staple = SimpleITK STAPLE per label thresholded at 0.5 (default); "
        "vote = majority vote, ties become background",
    )  # fmt: skip
    parser.add_argument(
        "--csv", type=Path, metavar="FILE",
        help="agreement table to write (default OUT/agreement.csv)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from medseg.data.fusion import fuse_folders

    result = fuse_folders(args.raters, args.out, args.method, csv_path=args.csv)
    print(result.table(), end="")
    print(f"wrote {len(result.written)} fused label(s) to {args.out}; agreement: {result.csv_path}")
    return 0
