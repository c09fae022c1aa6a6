"""``medseg auto``: self-configuring automatic segmentation (nnU-Net style, CPU budget).

Sub-commands: ``check``, ``convert``, ``plan``, ``train``, ``predict``, ``run``. Training runs
unchanged under ``torchrun --nproc_per_node N -m medseg auto train ...``.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

from medseg.cli.arguments import parse_duration
from medseg.cli.auto_adapt_options import adapt_config, add_adapt_options
from medseg.cli.auto_init import add_init_options, init_options
from medseg.cli.auto_options import add_auto_predict_options, auto_predict_options
from medseg.cli.auto_train_options import add_label_efficiency_options, fuse_raters, rater_options
from medseg.cli.image_input import image_ref, is_remote, push_needs_remote, segment_remote
from medseg.cli.label_export import add_export_labels_parser, export_labels
from medseg.errors import InputError

NAME = "auto"
HELP = "self-configuring automatic segmentation: check, convert, plan, train, predict, run"

__all__ = ["NAME", "HELP", "add_arguments", "run", "parse_fold"]

log = logging.getLogger(__name__)


def parse_fold(text: str) -> int | str:
    if text == "all":
        return "all"
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"fold must be a number or 'all', got {text!r}")


def _budget_args(p: argparse.ArgumentParser, required: bool) -> None:
    group = p.add_mutually_exclusive_group(required=required)
    group.add_argument(
        "--time-budget",
        type=parse_duration,
        metavar="DURATION",
        help="wall-clock budget, e.g. 30m, 1h, 90s",
    )
    group.add_argument("--iterations", type=int, help="train a fixed number of iterations")


def _plan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--configuration", choices=("auto", "2d", "3d"), default="auto",
        help="network configuration: auto = 2d for 2D images or strongly anisotropic volumes, "
        "else 3d (default %(default)s)",
    )  # fmt: skip
    p.add_argument("--memory-gb", type=float, default=4.0, help="activation memory budget")
    p.add_argument(
        "--min-iterations",
        type=int,
        default=500,
        help="iterations the plan must fit into the time budget",
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")


def _split_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--split-mode", choices=("random", "blocks"), default="random",
        help="cross-validation folds: random = shuffled with --seed, blocks = contiguous runs "
        "of sorted case ids (for correlated neighbours); used when splits.json is first "
        "written (default %(default)s)",
    )  # fmt: skip


def _training_args(p: argparse.ArgumentParser) -> None:
    """Options ``train`` and ``run`` share after their own: seed, label-efficient training,
    ``--init``, plan sizing and threads."""
    p.add_argument(
        "--seed", type=int, default=0,
        help="random seed of the fold split, preprocessing sampling and training "
        "(default %(default)s)",
    )  # fmt: skip
    add_label_efficiency_options(p)
    add_init_options(p)
    _plan_args(p)
    _common(p)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="auto_command", metavar="STEP", required=True)
    p = sub.add_parser("check", help="verify an nnU-Net raw dataset folder")
    p.add_argument("data", type=Path, help="nnU-Net raw dataset folder (with dataset.json)")
    p = sub.add_parser("convert", help="images/ + labels/ folder -> nnU-Net raw layout")
    p.add_argument("src", type=Path, help="source folder holding images/ and labels/")
    p.add_argument("dst", type=Path, help="nnU-Net raw dataset folder to write")
    p.add_argument("--binarize", action="store_true", help="instance labels -> 0/1 mask")
    p.add_argument("--channel-names", nargs="+", help="e.g. CT, or T1 T2 (default: guessed)")
    p.add_argument(
        "--overwrite", action="store_true", help="write into DST even when it is not empty"
    )
    p = sub.add_parser("plan", help="fingerprint the dataset and write plans.json")
    p.add_argument("data", type=Path, help="nnU-Net raw dataset folder (with dataset.json)")
    p.add_argument("--out", type=Path, required=True, help="model folder")
    p.add_argument(
        "--time-budget", type=parse_duration, default=1800.0, metavar="DURATION",
        help="training time the plan is sized for, e.g. 30m, 1h (default 30m)",
    )  # fmt: skip
    _plan_args(p)
    _common(p)
    _add_train(sub)
    _add_predict(sub)
    _add_run(sub)
    add_export_labels_parser(sub)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one fold (plans first if needed)")
    p.add_argument("data", type=Path, help="nnU-Net raw dataset folder (with dataset.json)")
    p.add_argument("--out", type=Path, required=True, help="model folder")
    _budget_args(p, required=True)
    p.add_argument("--fold", type=parse_fold, default=0, help="0..4 or all (default 0)")
    p.add_argument("--resume", action="store_true", help="continue from checkpoint_latest.pt")
    _split_args(p)
    _training_args(p)


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="segment a file or an imagesTs-style folder")
    p.add_argument("model", type=Path, help="trained medseg auto model folder")
    p.add_argument(
        "input", type=image_ref,
        help="image file, folder of images named like imagesTs, or a DICOMweb series "
        "dicomweb://host:port/prefix/studies/STUDY/series/SERIES",
    )  # fmt: skip
    p.add_argument(
        "out", type=Path,
        help="output folder (files named by case id); for a DICOMweb input a DICOM-SEG: a "
        ".dcm file, or a folder that gets SERIES.dcm",
    )  # fmt: skip
    p.add_argument(
        "--push", action="store_true",
        help="with a DICOMweb input: store the DICOM-SEG on that server (STOW-RS)",
    )  # fmt: skip
    add_auto_predict_options(p)
    add_adapt_options(p)
    p.add_argument(
        "--num-parts", type=int, default=1, metavar="N",
        help="split the sorted cases into N parts, e.g. one per process (default 1)",
    )  # fmt: skip
    p.add_argument(
        "--part-id", type=int, default=0, metavar="I",
        help="with --num-parts: predict part I, the cases I, I+N, I+2N, ... (default 0)",
    )  # fmt: skip
    _common(p)


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="check, plan, train, validate and report in one budget")
    p.add_argument("data", type=Path, help="nnU-Net raw dataset folder (with dataset.json)")
    p.add_argument("--out", type=Path, required=True, help="model folder")
    _budget_args(p, required=True)
    p.add_argument(
        "--fold", type=parse_fold, default=0,
        help="fold to train and validate, 0..4, or all (every case trains; default 0)",
    )  # fmt: skip
    _split_args(p)
    p.add_argument(
        "--tta", action="store_true",
        help="validate with mirrored test-time augmentation (slower, often better)",
    )  # fmt: skip
    p.add_argument(
        "--resume", action="store_true", help="continue training from checkpoint_latest.pt"
    )
    p.add_argument(
        "--max-val-cases", type=int, default=4, metavar="N",
        help="with --fold all (validation = training cases): predict at most N of them",
    )  # fmt: skip
    _training_args(p)


def _check(args: argparse.Namespace) -> int:
    from medseg.data.nnunet import check_dataset, format_issues, read_dataset

    ds = read_dataset(args.data)
    issues = check_dataset(ds)
    if issues:
        print(format_issues(issues))
    errors = sum(i.level == "error" for i in issues)
    print(
        f"{ds.name}: {len(ds.training)} training cases, {len(ds.test)} test cases, "
        f"{ds.num_channels} channel(s), labels {ds.labels}: {errors} error(s), "
        f"{len(issues) - errors} warning(s)"
    )
    if errors:
        raise InputError(f"{args.data}: {errors} error(s) found (listed above)")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from medseg.training.convert import convert_folder

    ds = convert_folder(
        args.src,
        args.dst,
        binarize=args.binarize,
        channel_names=args.channel_names,
        overwrite=args.overwrite,
    )
    print(
        f"wrote {args.dst}: {len(ds.training)} training and {len(ds.test)} test cases, "
        f"channels {ds.channel_names}, labels {ds.labels}"
    )
    return 0


def _budget(args: argparse.Namespace, seconds: float) -> object:
    from medseg.automatic.network import measure_flops_per_second
    from medseg.automatic.plan import PlanBudget

    return PlanBudget(
        time_budget_s=seconds,
        memory_bytes=args.memory_gb * 2**30,
        flops_per_second=measure_flops_per_second(),
        min_iterations=args.min_iterations,
        configuration=args.configuration,
    )


def _plan(args: argparse.Namespace) -> int:
    from medseg.training.pipeline import plan_dataset

    plan = plan_dataset(args.data, args.out, _budget(args, args.time_budget))
    print(f"wrote {args.out / 'plans.json'}")
    for note in plan.notes:
        print(f"  {note}")
    print(f"  patch {plan.patch_size}, batch {plan.batch_size}, filters {plan.filters}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from medseg.training.ddp import barrier, cleanup, init_distributed
    from medseg.training.pipeline import plan_dataset, train_fold
    from medseg.training.raters import fused_data_dir
    from medseg.training.run import preprocess_model_dir, remove_if_created
    from medseg.training.semisup import prepare_unlabeled
    from medseg.training.trainer import TrainConfig

    raters, method = rater_options(args)
    init, init_cfg = init_options(args)  # --init OLD_MODEL: fine-tune its weights
    data = args.data if raters is None else fused_data_dir(args.out)
    dist = init_distributed()
    try:
        if dist.is_main:
            with remove_if_created(args.out):  # a failed check leaves no half-built folder
                if raters is not None:
                    data = fuse_raters(args, raters, method)
                if init is not None:
                    from medseg.training.init_weights import adopt_plan

                    adopt_plan(init, data, args.out)
                if not (args.out / "plans.json").is_file():
                    plan_dataset(data, args.out, _budget(args, args.time_budget or 1800.0))
                preprocess_model_dir(data, args.out, seed=args.seed)
                unlabeled = prepare_unlabeled(args.unlabeled, data, args.out)
        barrier(dist)
        if not dist.is_main:
            unlabeled = prepare_unlabeled(args.unlabeled, data, args.out, preprocess=False)
        cfg = TrainConfig(
            fold=args.fold,
            time_budget_s=args.time_budget,
            iterations=args.iterations,
            seed=args.seed,
            unlabeled=unlabeled,
            unlabeled_weight=args.unlabeled_weight,
            label_noise=args.label_noise,
        )
        cfg = replace(cfg, **init_cfg)
        result = train_fold(
            data, args.out, cfg, resume=args.resume, split_mode=args.split_mode, dist=dist,
            init=init,
        )  # fmt: skip
        # every rank done with its collectives before any leaves the group: a rank that
        # destroyed the group while another still used it aborted gloo (SIGABRT, seen once)
        barrier(dist)
    finally:
        cleanup(dist)
    if dist.is_main:
        if init is not None:
            print(f"initialised from {init.describe()}, initial lr {cfg.initial_lr:g}")
        state = "finished" if result.finished else "stopped"
        print(
            f"{state} at iteration {result.iterations}/{result.total_iterations} "
            f"after {result.elapsed_s:.0f} s; best EMA pseudo-Dice {result.best_ema_dice:.3f}"
        )
    return 0


def _predict(args: argparse.Namespace) -> int:
    from medseg.automatic.model import AutoModel, PredictConfig
    from medseg.automatic.predict import predict_folder

    if args.push:
        push_needs_remote(args.input)
    cfg = PredictConfig(**auto_predict_options(args))
    model = AutoModel(args.model, cfg)
    if args.adapt:
        from medseg.automatic.adapt import AdaptedModel

        model = AdaptedModel(model, adapt_config(args))
    if is_remote(args.input):  # WADO-RS in, DICOM-SEG out (and STOW-RS with --push)
        seg, pushed = segment_remote(args.input, args.out, model.predict, push=args.push)
        written = [seg]
        if pushed:
            print(f"stored {seg.name} on {pushed}")
    else:
        written = predict_folder(
            model, args.input, args.out, num_parts=args.num_parts, part_id=args.part_id
        )
    if args.adapt:
        print(model.summary())
    print(f"wrote {len(written)} segmentation(s) to {args.out}")
    return 0


def _run_init(args: argparse.Namespace) -> dict:
    init, cfg = init_options(args)  # checked here, resolved again by run_auto
    return {} if init is None else {"init": args.init, "init_lr": cfg["initial_lr"]}


def _run(args: argparse.Namespace) -> int:
    from medseg.training.run import RunOptions, run_auto

    raters, method = rater_options(args)
    opts = RunOptions(
        time_budget_s=args.time_budget,
        iterations=args.iterations,
        fold=args.fold,
        configuration=args.configuration,
        memory_gb=args.memory_gb,
        min_iterations=args.min_iterations,
        split_mode=args.split_mode,
        seed=args.seed,
        tta=args.tta,
        resume=args.resume,
        max_val_cases_all=args.max_val_cases,
        raters=raters,
        fuse_method=method,
        **_run_init(args),
        unlabeled=args.unlabeled,
        unlabeled_weight=args.unlabeled_weight,
        label_noise=args.label_noise,
    )
    report = run_auto(args.data, args.out, opts)
    print(report.read_text())
    print(f"report: {report}")
    return 0


def run(args: argparse.Namespace) -> int:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    steps = {
        "check": _check,
        "convert": _convert,
        "plan": _plan,
        "train": _train,
        "predict": _predict,
        "run": _run,
        "export-labels": export_labels,
    }
    return steps[args.auto_command](args)
