"""``medseg classify train|predict|evaluate``: image classification, 2D and 3D, over
:mod:`medseg.classify` (``train``, ``load``, ``predict_files``, ``evaluate``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from medseg.cli.arguments import parse_duration

NAME = "classify"
HELP = "classify images: 'medseg classify train DATA --out MODEL_DIR', then predict / evaluate"

__all__ = ["NAME", "HELP", "add_arguments", "run"]

log = logging.getLogger(__name__)

# Kept here so that ``medseg --help`` does not import numpy; a test checks they match
# medseg.classify.networks.NETWORKS, medseg.classify.data.TASKS, corrupt.SEVERITIES and
# losses.LOSSES.
MODELS = ("auto", "resnet18", "efficientnet-lite0", "cnn3d", "tinyvit")
TASKS = ("binary", "multi-class", "ordinal", "multi-label")
SPLITS = ("train", "val", "test")
SEVERITIES = (1, 2, 3, 4, 5)
LOSSES = ("ce", "ordinal", "sord")


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected a number >= {low}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (one usage-error line otherwise)."""
    return _int_at_least(text, 1)


def _non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def _member_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    from medseg.classify.ensemble import MEMBER_PRESETS

    allowed = (*MODELS[1:], "baseline", *MEMBER_PRESETS)
    bad = [n for n in names if n not in allowed]
    if bad or len(names) < 2:
        raise argparse.ArgumentTypeError(
            f"need two or more comma-separated members from {', '.join(allowed)}; got {text!r}"
        )
    return names


def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train a classifier on a MedMNIST .npz, folder or CSV")
    p.add_argument(
        "data",
        type=Path,
        help="MedMNIST .npz, folder of class sub-folders "
        "(optionally under train/ val/ test/), or CSV path,label[,split]",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="MODEL_DIR",
        help="model folder to write (classifier.json, weights.pt, report.json)",
    )
    _add_train_network(p)
    _add_train_schedule(p)
    _add_train_labels(p)
    _add_train_recipe(p)
    p.add_argument("--threads", type=positive_int, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_train_network(p: argparse.ArgumentParser) -> None:
    """``train``'s network: ``--model``, ``--ensemble`` and ``--baseline``."""
    p.add_argument(
        "--model",
        choices=MODELS,
        default=None,
        help="network (default auto: for 2D an ensemble of tinyvit with one augmented train "
        "copy and efficientnet-lite0, see --ensemble; cnn3d for 3D)",
    )
    p.add_argument(
        "--ensemble",
        type=_member_list,
        metavar="A,B,...",
        help="train these members (networks, or 'baseline' for the ResNet-18 recipe) one "
        "after the other (each an equal share of the budget left) and average their probabilities",
    )
    p.add_argument(
        "--baseline",
        action="store_true",
        help="the MedMNIST ResNet-18 recipe (batch 128, step decay, no augmentation)",
    )


def _add_train_schedule(p: argparse.ArgumentParser) -> None:
    """``train``'s schedule: ``--time-budget``, ``--epochs``, ``--batch-size`` and ``--lr``."""
    p.add_argument(
        "--time-budget",
        "--time",
        dest="time_budget",
        type=parse_duration,
        default="10m",
        help="training time (default 10m; e.g. 90s, 30m, 1h)",
    )
    p.add_argument("--epochs", type=positive_int, help="stop after this many epochs")
    p.add_argument("--batch-size", type=positive_int, help="samples per step")
    p.add_argument("--lr", type=float, help="peak learning rate")


def _add_train_labels(p: argparse.ArgumentParser) -> None:
    """``train``'s task and inputs: ``--task``, ``--size``, ``--classes`` and ``--loss``."""
    p.add_argument("--task", choices=TASKS, help="override the task told by the labels")
    p.add_argument(
        "--size",
        type=positive_int,
        default=64,
        help="edge length folder/CSV images are resized to (default 64)",
    )
    p.add_argument(
        "--classes",
        nargs="+",
        metavar="NAME",
        help="class names in label order (folder/CSV; default: sorted labels)",
    )
    p.add_argument(
        "--loss",
        choices=LOSSES,
        help="training loss (default ce); for ordinal grades: ordinal (cross-entropy + "
        "cumulative P(y>k) BCE) or sord (soft labels toward neighbouring grades)",
    )


def _add_train_recipe(p: argparse.ArgumentParser) -> None:
    """``train``'s recipe: feature and training augmentation, TTA, the epoch selection
    metric, ``--no-test`` and ``--seed``."""
    p.add_argument(
        "--feature-augment",
        type=_non_negative_int,
        metavar="N",
        help="tinyvit: add N augmented copies of the train split (flips, affine, MedMNIST-C "
        "corruptions; encoded once, cached) to the head's data (default 1 with --model "
        "auto on 2D data, else 0)",
    )
    p.add_argument(
        "--feature-corrupt",
        type=_non_negative_int,
        metavar="N",
        help="tinyvit: add N corrupted copies of the train split (the data set's official "
        "MedMNIST-C corruptions, half Gaussian noise, severity 1-5; cached) to the head's data",
    )
    p.add_argument("--no-augment", action="store_true", help="no training augmentation")
    p.add_argument("--tta", action="store_true", help="flip test-time augmentation")
    p.add_argument(
        "--select",
        choices=("auc", "acc", "auc+acc"),
        help="validation metric that picks the epoch kept (default auc)",
    )
    p.add_argument(
        "--no-test",
        action="store_true",
        help="do not read the test split (report validation metrics only)",
    )
    p.add_argument(
        "--seed", type=int, default=0,
        help="random seed of weight init, shuffling and augmentation (default %(default)s)",
    )  # fmt: skip


def _add_predict(sub: Any) -> None:
    p = sub.add_parser("predict", help="classify image files or folders -> CSV")
    p.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="trained model folder")
    p.add_argument(
        "images",
        nargs="+",
        type=Path,
        metavar="IMAGE",
        help="image files or folders of them (PNG, TIFF, NIfTI, ...)",
    )
    p.add_argument(
        "--csv",
        type=Path,
        metavar="FILE",
        help="write path,class,p_<class>... here (default: stdout)",
    )
    p.add_argument("--gradcam", type=Path, metavar="DIR", help="write Grad-CAM overlay PNGs")
    p.add_argument(
        "--gradcam-n",
        type=positive_int,
        default=16,
        help="overlays of the first N images (default 16)",
    )
    p.add_argument("--threads", type=positive_int, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="AUC/ACC (bootstrap 95%% CI), optionally corrupted")
    p.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="trained model folder")
    p.add_argument("data", type=Path, help="MedMNIST .npz, class folder or CSV")
    p.add_argument("--split", choices=SPLITS, default="test", help="split (default test)")
    p.add_argument(
        "--corrupt",
        action="store_true",
        help="also under the MedMNIST-C corruptions (noise, blur, contrast, ...)",
    )
    p.add_argument(
        "--severities",
        type=int,
        nargs="+",
        choices=SEVERITIES,
        default=list(SEVERITIES),
        help="corruption severities (default 1-5)",
    )
    p.add_argument(
        "--bootstrap",
        type=_non_negative_int,
        default=1000,
        help="bootstrap resamples for the 95%% intervals (default 1000; 0: none)",
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="write the full report here")
    p.add_argument(
        "--plots", type=Path, metavar="DIR", help="write calibration.png (and corruptions.png) here"
    )
    p.add_argument(
        "--gradcam", type=Path, metavar="DIR", help="Grad-CAM overlays of a sample of the split"
    )
    p.add_argument("--gradcam-n", type=positive_int, default=16, help="overlays (default 16)")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    _add_train(sub)
    _add_predict(sub)
    _add_evaluate(sub)


def _threads(args: argparse.Namespace) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def _train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """TrainOptions fields given on the command line (others keep the recipe's defaults)."""
    from medseg.classify.augment import AugmentConfig

    given = {
        "model": args.model,
        "max_epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "select": args.select,
        "loss": args.loss,
        "feature_augment_copies": args.feature_augment,
        "feature_corrupt_copies": args.feature_corrupt,
    }
    out = {k: v for k, v in given.items() if v is not None}
    if args.ensemble:
        out.update(model="ensemble", ensemble=args.ensemble)
    out.update(time_budget_s=args.time_budget, seed=args.seed, progress=not args.no_progress)
    if args.threads:
        out["threads"] = args.threads
    if args.no_augment:
        out["augment"] = AugmentConfig(enabled=False)
    if args.tta:
        out["tta"] = True
    return out


def _run_train(args: argparse.Namespace) -> int:
    from medseg.classify import TrainOptions, baseline_options, read_dataset, train

    ds = read_dataset(args.data, task=args.task, size=args.size, classes=args.classes)
    overrides = _train_overrides(args)
    options = baseline_options(**overrides) if args.baseline else TrainOptions(**overrides)
    result = train(ds, args.out, options, evaluate_test=not args.no_test)
    split, metrics = ("val", result.val) if result.test is None else ("test", result.test)
    print(
        f"{result.classifier.config.model}: {len(result.history)} epoch(s) in "
        f"{result.elapsed_s:.0f} s, best epoch {result.best_epoch}; {split} AUC "
        f"{metrics['auc']:.3f}, ACC {metrics['acc']:.3f}"
    )
    log.info("model folder: %s (metrics in report.json)", args.out)
    return 0


def _run_predict(args: argparse.Namespace) -> int:
    from medseg.classify import load, predict_files, write_csv
    from medseg.classify.predict import gradcam_files

    clf = load(args.model_dir)
    preds = predict_files(clf, args.images, progress=not args.no_progress)
    if args.gradcam:
        gradcam_files(clf, preds, args.gradcam, args.gradcam_n)
        log.info("Grad-CAM overlays: %s", args.gradcam)
    if args.csv:
        log.info("wrote %s (%d rows)", write_csv(preds, args.csv), len(preds.paths))
    else:
        import csv

        rows = preds.rows()
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return 0


def _read_eval_data(args: argparse.Namespace, clf: Any) -> Any:
    """The data set read the way the model needs it (size, class names, task)."""
    from medseg.classify import read_dataset

    cfg = clf.config
    if args.data.suffix.lower() == ".npz":
        return read_dataset(args.data)
    task = cfg.task if cfg.task != "multi-label" else None
    return read_dataset(args.data, task=task, size=cfg.data_size, classes=clf.classes)


def _summary(rep: dict[str, Any], severity: int) -> str:
    """Readable lines: AUC/ACC with intervals, balanced ACC, ECE, corruption table."""

    def ci(key: str) -> str:
        lo_hi = rep.get(f"{key}_ci95")
        return f"{rep[key]:.3f}" + (f" (95% CI {lo_hi[0]:.3f}-{lo_hi[1]:.3f})" if lo_hi else "")

    lines = [
        f"{rep['split']} split of {rep['source']} (n={rep['n']}, {rep['task']}, {rep['model']})",
        f"AUC {ci('auc')}",
        f"ACC {ci('acc')}",
        f"balanced ACC {rep['balanced_acc']:.3f}, ECE {rep['ece']:.3f}",
    ]
    if "corruptions" in rep:
        from medseg.classify.evaluate import corruption_table

        lines += ["", corruption_table(rep, severity)]
    return "\n".join(lines)


def _run_evaluate(args: argparse.Namespace) -> int:
    from medseg.classify import evaluate, gradcam_overlays, load
    from medseg.classify.evaluate import save_plots

    clf = load(args.model_dir)
    ds = _read_eval_data(args, clf)
    severities = tuple(sorted(set(args.severities)))
    rep = evaluate(clf, ds, args.split, args.corrupt, args.bootstrap, severities)
    print(_summary(rep, 3 if 3 in severities else severities[-1]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rep, indent=1, default=float))
        log.info("wrote %s", args.json)
    if args.plots:
        log.info("plots: %s", ", ".join(str(p) for p in save_plots(rep, args.plots)))
    if args.gradcam:
        images, labels = ds.images[args.split], ds.labels[args.split]
        gradcam_overlays(clf, images, labels, args.gradcam, n=args.gradcam_n)
    return 0


def run(args: argparse.Namespace) -> int:
    _threads(args)
    actions = {"train": _run_train, "predict": _run_predict, "evaluate": _run_evaluate}
    return actions[args.action](args)
