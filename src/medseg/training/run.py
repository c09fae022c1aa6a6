"""``medseg auto run``: check, plan, preprocess, train, validate and report in one budget.

The time budget covers the whole run. Checking, planning and preprocessing are timed as
they happen; the expected validation inference time is estimated from the plan (sliding
windows x calibrated forward time) and reserved; training gets the rest.

A model folder the run creates is removed again when a step before training fails
(``remove_if_created``; ``medseg auto train`` uses it too); an existing folder is kept.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from medseg.automatic.plan import Plan, PlanBudget
from medseg.errors import InputError

__all__ = [
    "RunOptions",
    "run_auto",
    "estimate_inference_s",
    "remove_if_created",
    "preprocess_model_dir",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """Options of a full run; exactly one of ``time_budget_s`` and ``iterations``.

    ``max_val_cases_all``: with ``fold="all"`` the "validation" cases are training cases
    (no held-out estimate, only a sanity check and the post-processing choice), so at most
    this many of them, evenly spread, are predicted and the budget goes to training.

    ``raters``: None = train on ``labelsTr``; rater label folders (or ``()`` for
    ``DATA/labelsTr_*``) = fuse them with ``fuse_method`` first and train on the fused labels
    (:mod:`medseg.training.raters`).
    """

    time_budget_s: float | None = 1800.0
    iterations: int | None = None
    fold: int | str = 0
    configuration: str = "auto"
    memory_gb: float = 4.0
    min_iterations: int = 500
    split_mode: str = "random"
    seed: int = 0
    tta: bool = False
    resume: bool = False
    max_val_cases_all: int = 4
    raters: tuple[str, ...] | None = None
    fuse_method: str = "staple"
    init: str | Path | None = None  # fine-tune from a model (medseg.training.init_weights)
    init_lr: float = 1e-2
    unlabeled: str | Path | None = None  # semi-supervised (medseg.training.semisup)
    unlabeled_weight: float = 1.0
    label_noise: str = "none"  # noisy labels (medseg.training.noise)


def _first_missing(path: Path) -> Path | None:
    """The outermost of ``path`` and its parents that does not exist yet (None: it exists)."""
    path = Path(os.path.abspath(path))
    if path.exists() or path.is_symlink():
        return None
    missing = path
    for parent in path.parents:
        if parent.exists():
            break
        missing = parent
    return missing


@contextlib.contextmanager
def remove_if_created(model_dir: str | Path) -> Iterator[None]:
    """Remove ``model_dir`` (and the parents made with it) when the block raises, but only
    when it did not exist on entry; a folder that existed before is never touched.

    Wraps the steps before training (check, plan, preprocess), so a failed run leaves no
    half-built model folder behind.
    """
    created = _first_missing(Path(model_dir))
    try:
        yield
    except BaseException:
        if created is not None and created.is_dir() and not created.is_symlink():
            shutil.rmtree(created, ignore_errors=True)
            log.warning("removed %s: the run failed before training started", created)
        raise


def preprocess_model_dir(data_dir: str | Path, model_dir: str | Path, *, seed: int = 0) -> Path:
    """Preprocess the training cases of ``data_dir`` with the plan of ``model_dir`` into
    ``model_dir/preprocessed`` (cached cases are skipped); returns the cache folder."""
    from medseg.automatic.plan import load_plan
    from medseg.data.nnunet import read_dataset
    from medseg.training.cache import preprocess_dataset

    model_dir = Path(model_dir)
    plan = load_plan(model_dir / "plans.json")
    return preprocess_dataset(read_dataset(data_dir), plan, model_dir / "preprocessed", seed=seed)


def estimate_inference_s(plan: Plan, resampled_shapes: list[tuple[int, ...]], tta: bool) -> float:
    """Seconds to predict cases of the given (transposed, resampled) shapes.

    A window costs a third of a per-sample training step (forward only); windows overlap
    by half; mirroring multiplies by ``2**dims``; x1.5 for resampling and I/O.
    """
    per_window = plan.estimated_iteration_s / plan.batch_size / 3.0
    patch = plan.sample_patch_size
    total = 0.0
    for shape in resampled_shapes:
        n = 1
        for s, p in zip(shape, patch, strict=True):
            step = max(1, int(p * 0.5))
            n *= 1 if s <= p else math.ceil((s - p) / step) + 1
        total += n * per_window
    return 1.5 * total * (2**plan.spatial_dims if tta else 1)


def _val_shapes(model_dir: Path, plan: Plan, val_ids: list[str]) -> list[tuple[int, ...]]:
    from medseg.training.cache import load_preprocessed

    return [tuple(load_preprocessed(model_dir / "preprocessed", c).seg.shape) for c in val_ids]


def _check(data_dir: Path) -> Any:
    from medseg.data.nnunet import check_dataset, format_issues, read_dataset

    ds = read_dataset(data_dir)
    issues = check_dataset(ds)
    errors = [i for i in issues if i.level == "error"]
    for issue in issues:
        log.warning("%s", issue)
    if errors:
        raise InputError(f"dataset check found {len(errors)} error(s):\n{format_issues(errors)}")
    return ds, issues


def _train_config(opts: RunOptions, train_budget: float | None) -> Any:
    from medseg.training.trainer import TrainConfig

    common = {"fold": opts.fold, "seed": opts.seed, "label_noise": opts.label_noise}
    if opts.iterations is not None:
        return TrainConfig(iterations=opts.iterations, **common)
    return TrainConfig(time_budget_s=train_budget, **common)


def _prepare(data_dir: Path, model_dir: Path, opts: RunOptions) -> dict[str, Any]:
    """Check, plan (or reuse the plan), then :func:`~medseg.training.pipeline.prepare_fold`
    (preprocess and split, once for the whole run); timed."""
    from medseg.automatic.network import measure_flops_per_second
    from medseg.training.data import spread_subset
    from medseg.training.pipeline import ensure_plan, prepare_fold

    ds, issues = _check(data_dir)
    budget = PlanBudget(
        time_budget_s=0.8 * opts.time_budget_s if opts.time_budget_s else 600.0,
        memory_bytes=opts.memory_gb * 2**30,
        flops_per_second=measure_flops_per_second(),
        min_iterations=opts.min_iterations,
        configuration=opts.configuration,
    )
    plan = ensure_plan(data_dir, model_dir, budget)
    t0 = time.perf_counter()
    fold = prepare_fold(ds, model_dir, opts.fold, seed=opts.seed, split_mode=opts.split_mode)
    val_ids = fold.val_ids
    if opts.fold == "all":
        val_ids = spread_subset(val_ids, opts.max_val_cases_all)
    return {"ds": ds, "issues": issues, "plan": plan, "fold": fold, "val_ids": val_ids,
            "preprocess_s": time.perf_counter() - t0}  # fmt: skip


def run_auto(data_dir: str | Path, model_dir: str | Path, opts: RunOptions) -> Path:
    """Run every step; returns the path of ``report/report.md``."""
    from medseg.training.pipeline import train_fold, validate_fold
    from medseg.training.report import write_report

    t0 = time.perf_counter()
    data_dir, model_dir = Path(data_dir), Path(model_dir)
    with remove_if_created(model_dir):
        data_dir, raters, init, prep, unlabeled = _prepare_inputs(data_dir, model_dir, opts)
    plan, val_ids = prep["plan"], prep["val_ids"]
    train_budget = _train_budget(opts, plan, model_dir, val_ids, t0)
    t_train = time.perf_counter()
    fold = prep["fold"]
    cfg = replace(_train_config(opts, train_budget), unlabeled=unlabeled,
                  unlabeled_weight=opts.unlabeled_weight)  # fmt: skip
    if init is not None:
        cfg = replace(cfg, initial_lr=opts.init_lr)
    result = train_fold(data_dir, model_dir, cfg, resume=opts.resume, prepared=fold, init=init)
    train_s = time.perf_counter() - t_train
    val = validate_fold(
        data_dir, model_dir, opts.fold, tta=opts.tta, case_ids=val_ids, prepared=fold
    )
    report_dir = model_dir / "report"
    timings = {"preprocess_s": prep["preprocess_s"], "train_s": train_s,
               "inference_s_per_case": val["inference_s_per_case"],
               "total_s": time.perf_counter() - t0}  # fmt: skip
    info = _report_info(opts, prep, result, val, timings, report_dir)
    info["raters"] = raters
    info["semi_supervised"] = _semisup_info(opts, unlabeled)
    return write_report(report_dir, info)


def _prepare_inputs(
    data_dir: Path, model_dir: Path, opts: RunOptions
) -> tuple[Path, Any, Any, dict[str, Any], Any]:
    """The steps before training (run inside ``remove_if_created``): fuse the raters'
    labels, prepare the initial weights, :func:`_prepare`, then the unlabeled cases.
    Returns ``(data_dir, raters, init, prep, unlabeled)``, ``data_dir`` the fused labels'
    dataset when there are raters."""
    from medseg.training.init_weights import prepare_init
    from medseg.training.semisup import prepare_unlabeled

    raters = None
    if opts.raters is not None:
        from medseg.training.raters import prepare_rater_dataset

        data_dir, raters = prepare_rater_dataset(data_dir, model_dir, opts.raters, opts.fuse_method)
    init = None if opts.init is None else prepare_init(opts.init, data_dir, model_dir)
    prep = _prepare(data_dir, model_dir, opts)
    unlabeled = prepare_unlabeled(opts.unlabeled, data_dir, model_dir)
    return data_dir, raters, init, prep, unlabeled


def _train_budget(
    opts: RunOptions, plan: Plan, model_dir: Path, val_ids: list[str], t0: float
) -> float | None:
    """Seconds for training in a run started at ``t0`` (``time.perf_counter()``), after
    reserving the validation inference of ``val_ids`` and the report; None without a time
    budget."""
    if opts.time_budget_s is None:
        return None
    reserve = estimate_inference_s(plan, _val_shapes(model_dir, plan, val_ids), opts.tta)
    reserve += 2.0 + 0.02 * opts.time_budget_s  # scoring, overlays, report
    remaining = opts.time_budget_s - (time.perf_counter() - t0)
    train_budget = max(remaining - reserve, 0.5 * remaining, 1.0)
    log.info("training budget %.0f s (%.0f s reserved for validation)", train_budget, reserve)
    return train_budget


def _report_info(
    opts: RunOptions, prep: dict[str, Any], result: Any, val: dict, timings: dict,
    report_dir: Path,
) -> dict[str, Any]:  # fmt: skip
    """The report's contents (:func:`~medseg.training.report.write_report`) but for
    ``raters`` and ``semi_supervised``: the run's preparation ``prep``, training ``result``,
    validation ``val`` and ``timings``; overlay paths relative to ``report_dir``."""
    from medseg.training.pipeline import fold_name

    plan, fold, val_ids = prep["plan"], prep["fold"], prep["val_ids"]
    train = {
        "iterations": result.iterations,
        "total_iterations": result.total_iterations,
        "time_budget_s": opts.time_budget_s,
        "n_train": len(fold.train_ids),
        "n_val": len(val_ids),
        "finished": result.finished,
        "best_ema_pseudo_dice": result.best_ema_dice,
    }
    return {
        "dataset": prep["ds"].name,
        "fold": opts.fold,
        "plan_notes": list(plan.notes),
        "train": train,
        "summary": val["summary"],
        "cases": val["cases"],
        "postprocessing": val["postprocessing"],
        "timings": timings,
        "overlays": [str(p.relative_to(report_dir)) for p in val["overlays"]],
        "curve": f"../{fold_name(opts.fold)}/training_curve.png",
        "warnings": _warnings(plan, result, val, opts, prep["issues"]),
    }


def _semisup_info(opts: RunOptions, unlabeled: Any) -> dict[str, Any] | None:
    """The report's ``semi_supervised`` entry: None without unlabeled cases."""
    from medseg.training.semisup import semisup_summary

    return semisup_summary(len(unlabeled), opts.unlabeled_weight) if unlabeled else None


def _warnings(plan: Plan, result: Any, val: dict, opts: RunOptions, issues: list) -> list[str]:
    out = [str(i) for i in issues]
    out += [n for n in plan.notes if n.startswith("WARNING")]
    if opts.fold == "all":
        out.append(
            f"fold 'all': the metrics are measured on {val['n_val']} training case(s) and "
            "overestimate"
        )
    if val["n_val"] < 3:
        out.append(f"only {val['n_val']} validation case(s): the metrics are a rough estimate")
    if result.iterations < 250:
        out.append(f"only {result.iterations} training iterations: the model is under-trained")
    dice = val["summary"]["overall"]["dice"]["class_mean"]
    if dice is not None and np.isfinite(dice) and dice < 0.5:
        out.append(f"mean validation Dice {dice:.3f} is low: more time or data are needed")
    return out
