"""Label-efficient training options of ``medseg auto train`` and ``medseg auto run``: several
raters (``--raters``, ``--fuse``), unlabelled images (``--unlabeled``) and noisy labels
(``--label-noise``; the choices are :mod:`medseg.training.noise`'s ``LABEL_NOISE_MODES``,
written out here so that parsing the command line does not import torch)."""

from __future__ import annotations

import argparse
from pathlib import Path

from medseg.errors import InputError

__all__ = [
    "LABEL_NOISE_CHOICES",
    "add_label_efficiency_options",
    "add_label_noise_option",
    "fuse_raters",
    "rater_options",
]

LABEL_NOISE_CHOICES = ("none", "robust", "gce", "correct", "band")


def add_label_noise_option(p: argparse.ArgumentParser) -> None:
    """Register ``--label-noise {none,robust,gce,correct,band}`` (default none)."""
    p.add_argument(
        "--label-noise", choices=LABEL_NOISE_CHOICES, default="none",
        help="use robust when the training labels are known to be imprecise (outlines a few "
        "pixels off, structures missed in some cases, quick or semi-automatic annotation): "
        "robust = the method chosen by measurement (band: Dice + CE skipping a band of 1 "
        "px inside / 2 px outside the label boundaries, see docs/auto.md); gce (Dice + "
        "generalized cross-entropy), correct (label correction) and band name the "
        "candidates; none (default) = plain Dice + CE, best for "
        "careful labels",
    )  # fmt: skip


def _rater_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--raters", nargs="*", metavar="DIR", default=None,
        help="train on the fusion of several raters' label folders (one <case><ending> file "
        "per training case each): the DIRs given, or with no DIR the dataset's "
        "labelsTr_<rater>/ folders; fused once into MODEL/fused_labels, agreement in "
        "MODEL/raters.json",
    )  # fmt: skip
    p.add_argument(
        "--fuse", choices=("staple", "vote"), default=None,
        help="with --raters: STAPLE thresholded at 0.5, or majority vote (ties -> background) "
        "(default staple)",
    )  # fmt: skip


def rater_options(args: argparse.Namespace) -> tuple[tuple[str, ...] | None, str]:
    """``(rater folders or None, fusion method)``; ``--fuse`` alone is an error."""
    if args.raters is None:
        if args.fuse is not None:
            raise InputError("--fuse only applies with --raters")
        return None, "staple"
    return tuple(str(d) for d in args.raters), args.fuse or "staple"


def _unlabeled_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--unlabeled", type=Path, metavar="DIR", default=None,
        help="semi-supervised: also learn from the unlabelled images in DIR (named like "
        "imagesTr, <case>_0000<ending>; no labels) with a mean teacher and copy-paste mixing",
    )  # fmt: skip
    p.add_argument(
        "--unlabeled-weight", type=float, default=1.0, metavar="W",
        help="with --unlabeled: weight of the unlabelled (mixed) loss (default %(default)s)",
    )  # fmt: skip


def add_label_efficiency_options(p: argparse.ArgumentParser) -> None:
    """Register ``--raters``/``--fuse``, ``--unlabeled``/``--unlabeled-weight`` and
    ``--label-noise``."""
    _rater_args(p)
    _unlabeled_args(p)
    add_label_noise_option(p)


def fuse_raters(args: argparse.Namespace, raters: tuple[str, ...], method: str) -> Path:
    from medseg.training.raters import prepare_rater_dataset

    data, summary = prepare_rater_dataset(args.data, args.out, raters, method)
    print(
        f"fused {len(summary['raters'])} raters ({method}) of {summary['n_cases']} cases into "
        f"{args.out / 'fused_labels'}: mean pairwise Dice {summary['mean_pairwise_dice']:.3f}, "
        f"Fleiss' kappa {summary['mean_fleiss_kappa']:.3f} (per case and class: "
        f"{args.out / 'raters.json'})"
    )
    return data
