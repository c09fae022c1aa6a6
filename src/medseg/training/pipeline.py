"""The ``medseg auto`` steps on a model folder: plan, train one fold, validate, report.

Model folder layout::

    MODEL_DIR/dataset.json, fingerprint.json, plans.json, splits.json
    MODEL_DIR/preprocessed/            cached .npy arrays of the plan (see preprocess.py)
    MODEL_DIR/fold_N/                  checkpoints, training_log.json, training_curve.png
    MODEL_DIR/fold_N/validation/       predictions of the held-out cases, metrics.json
    MODEL_DIR/postprocessing.json      largest-component choice from validation
    MODEL_DIR/report/                  report.md, report.json, overlay PNGs (auto run)
    MODEL_DIR/fused_labels/, fused_data/, raters.json   with --raters (see raters.py)

:func:`prepare_fold` preprocesses and computes the splits once; ``train_fold`` and
``validate_fold`` take its :class:`FoldData` (``medseg auto run``) or prepare it themselves.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medseg.automatic.plan import Plan, PlanBudget
from medseg.errors import InputError
from medseg.io.atomic import atomic_path
from medseg.training.ddp import DistInfo, barrier

__all__ = [
    "FoldData",
    "plan_dataset",
    "ensure_plan",
    "prepare_fold",
    "train_fold",
    "validate_fold",
    "scored_labels",
    "fold_name",
]

log = logging.getLogger(__name__)


def fold_name(fold: int | str) -> str:
    return f"fold_{fold}"


def plan_dataset(data_dir: str | Path, model_dir: str | Path, budget: PlanBudget) -> Plan:
    """Fingerprint the dataset and write ``fingerprint.json`` and ``plans.json``."""
    from medseg.automatic.plan import save_plan
    from medseg.data.nnunet import read_dataset
    from medseg.training.fingerprint import compute_fingerprint, save_fingerprint
    from medseg.training.planning import plan_experiment

    ds = read_dataset(data_dir)
    if ds.problems:
        raise InputError(f"{ds.root}: {ds.problems[0]} (run medseg auto check for all problems)")
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    fp = compute_fingerprint(ds)
    save_fingerprint(fp, model_dir / "fingerprint.json")
    plan = plan_experiment(fp, budget)
    if ds.partial_labels:
        from dataclasses import replace

        note = (
            f"partial labels: {len(ds.partial_labels)} of {len(ds.training)} cases annotate "
            "only some classes; trained with the marginal Dice/CE loss (unannotated classes "
            "merged with background, no Dice for them)"
        )
        plan = replace(plan, notes=(*plan.notes, note))
    save_plan(plan, model_dir / "plans.json")
    with atomic_path(model_dir / "dataset.json") as tmp:
        shutil.copyfile(ds.root / "dataset.json", tmp)
    for note in plan.notes:
        log.info("plan: %s", note)
    return plan


def ensure_plan(data_dir: str | Path, model_dir: str | Path, budget: PlanBudget) -> Plan:
    """The existing ``plans.json`` of ``model_dir``, or a new plan."""
    from medseg.automatic.plan import load_plan

    path = Path(model_dir) / "plans.json"
    return load_plan(path) if path.is_file() else plan_dataset(data_dir, model_dir, budget)


@dataclass(frozen=True)
class FoldData:
    """One fold of a dataset, prepared once (:func:`prepare_fold`) and passed on.

    ``annotated``: case id -> ``(K,)`` bools of the classes its label annotates, for the
    partially labelled cases (:func:`medseg.data.nnunet.annotated_classes`).
    """

    dataset: Any
    plan: Plan
    cache: Path
    train_ids: list[str]
    val_ids: list[str]
    annotated: dict[str, list[bool]] = field(default_factory=dict)


def prepare_fold(
    dataset: Any,
    model_dir: str | Path,
    fold: int | str,
    *,
    seed: int = 0,
    split_mode: str = "random",
    dist: DistInfo | None = None,
    preprocess: bool = True,
) -> FoldData:
    """Preprocess (rank 0, cached; unless ``preprocess`` is False), read or write
    ``splits.json`` (rank 0 writes, the other ranks read it after a barrier) and select the
    fold: the one place the splits are computed.

    ``dataset``: the :class:`~medseg.data.nnunet.NnunetDataset` to train on; the plan is
    ``model_dir/plans.json``.
    """
    from medseg.automatic.plan import load_plan
    from medseg.data.nnunet import annotated_classes
    from medseg.training.cache import preprocess_dataset
    from medseg.training.data import load_or_make_splits, select_fold

    dist = dist or DistInfo()
    model_dir = Path(model_dir)
    plan = load_plan(model_dir / "plans.json")
    ids = [c.case_id for c in dataset.training]
    cache = model_dir / "preprocessed"
    if dist.is_main:
        if preprocess:
            preprocess_dataset(dataset, plan, cache, seed=seed)
        splits = load_or_make_splits(model_dir / "splits.json", ids, seed=seed, mode=split_mode)
    barrier(dist)
    if not dist.is_main:
        splits = load_or_make_splits(model_dir / "splits.json", ids)
    train_ids, val_ids = select_fold(splits, fold, ids)
    partial = {c: annotated_classes(dataset, c, plan.label_values) for c in dataset.partial_labels}
    return FoldData(dataset, plan, cache, train_ids, val_ids, partial)


def train_fold(
    data_dir: str | Path,
    model_dir: str | Path,
    config: Any,
    *,
    resume: bool = False,
    split_mode: str = "random",
    dist: DistInfo | None = None,
    prepared: FoldData | None = None,
    init: Any = None,
) -> Any:
    """Train one fold; returns the ``TrainResult``.

    ``prepared``: the fold from :func:`prepare_fold` (then ``data_dir`` and ``split_mode``
    are not read again); None prepares it here (preprocessing, splits). ``init``: an
    :class:`~medseg.training.init_weights.InitSource` whose weights training starts from
    (not on resume).
    """
    from medseg.data.nnunet import read_dataset
    from medseg.training.trainer import Trainer

    dist = dist or DistInfo()
    model_dir = Path(model_dir)
    fd = prepared or prepare_fold(
        read_dataset(data_dir), model_dir, config.fold, seed=config.seed,
        split_mode=split_mode, dist=dist,
    )  # fmt: skip
    if dist.distributed and config.val_patches % dist.world_size == 0:
        from dataclasses import replace

        config = replace(config, val_patches=config.val_patches // dist.world_size)
    trainer = Trainer(
        fd.plan, fd.cache, model_dir / fold_name(config.fold), fd.train_ids, fd.val_ids,
        config, dist, annotated=fd.annotated,
    )  # fmt: skip
    if init is not None and not resume:  # fine-tuning: another model's weights
        from medseg.training.init_weights import apply_init

        apply_init(trainer, init)
    return trainer.train(resume=resume)


def _overlay(path: Path, image: Any, gt: np.ndarray, pred: np.ndarray) -> Path:
    """Side-by-side PNG: reference (left) and prediction (right) on the slice with the most
    reference foreground."""
    from PIL import Image as PILImage

    from medseg.io.overlay import render_overlay

    z = None
    if gt.ndim == 3:
        z = int(np.argmax((gt > 0).reshape(gt.shape[0], -1).sum(1)))
    left = render_overlay(image, gt, slice_index=z)
    right = render_overlay(image, pred, slice_index=z)
    gap = np.full((left.shape[0], 4, 3), 255, np.uint8)
    with atomic_path(path) as tmp:
        PILImage.fromarray(np.concatenate([left, gap, right], axis=1)).save(tmp, format="PNG")
    return path


def _predict_cases(ds: Any, model: Any, val_ids: list[str], out: Path) -> dict[str, Any]:
    """Predict each case on its own grid; keep arrays for scoring (raw, before post-proc)."""
    from tqdm import tqdm

    from medseg.data.nnunet import load_case
    from medseg.io import save

    res: dict[str, Any] = {"preds": [], "gts": [], "spacings": [], "images": {}}
    t0 = time.perf_counter()
    for cid in tqdm(val_ids, desc="validate", unit="case", leave=False):
        image, label = load_case(ds, ds.case(cid))
        pred = model.predict(image)
        save(pred, out / f"{cid}{ds.file_ending}")
        res["preds"].append(pred.array)
        res["gts"].append(label.array)
        res["spacings"].append(image.spacing)
        if len(res["images"]) < 3:
            res["images"][cid] = image
    res["seconds_per_case"] = (time.perf_counter() - t0) / max(1, len(val_ids))
    return res


def _score(
    res: dict[str, Any], val_ids: list[str], plan: Plan, largest: list[int], scored: list
) -> tuple:
    """Metrics of the (post-processed) predictions; ``scored[i]``: the label values case
    ``i`` is scored on (a partial case: only the classes it annotates)."""
    from medseg.automatic.postprocess import keep_largest_component
    from medseg.metrics import MetricAccumulator, evaluate_case

    acc, rows = MetricAccumulator(), []
    for i, cid in enumerate(val_ids):
        if largest:
            res["preds"][i] = keep_largest_component(res["preds"][i], largest)
        case_rows = evaluate_case(
            res["preds"][i], res["gts"][i], labels=scored[i], spacing=res["spacings"][i], case=cid
        )
        for r in case_rows:
            r["name"] = plan.label_names.get(r["label"], "")
        acc.add(case_rows)
        rows += case_rows
    return acc.aggregate(), rows


def scored_labels(fd: FoldData, case_ids: list[str]) -> list[list[int]]:
    """Per case, the foreground label values validation scores: every class of a fully
    labelled case, only the annotated classes of a partial one (an unannotated class reads
    as background in its label, so scoring it would punish correct predictions)."""
    values = fd.plan.label_values
    out = []
    for cid in case_ids:
        ann = fd.annotated.get(cid, [True] * len(values))
        out.append([v for v, a in zip(values, ann, strict=True) if v and a])
    return out


def validate_fold(
    data_dir: str | Path,
    model_dir: str | Path,
    fold: int | str,
    *,
    tta: bool = False,
    case_ids: list[str] | None = None,
    prepared: FoldData | None = None,
) -> dict[str, Any]:
    """Predict the fold's validation cases (or ``case_ids``, a subset of them) on their
    original grids and score them.

    Writes ``fold_N/validation/<case><ending>`` (raw predictions) and ``metrics.json``,
    decides largest-component post-processing (``postprocessing.json``), writes overlay PNGs
    to ``report/`` and returns metrics *after* the chosen post-processing
    (``medseg.metrics``: Dice, HD95, NSD per class). A partially labelled case is scored,
    and counts for the post-processing choice, only on the classes it annotates
    (:func:`scored_labels`). ``prepared``: the fold from :func:`prepare_fold` (None: read
    ``data_dir`` and ``splits.json`` here).
    """
    from medseg.automatic.model import AutoModel, PredictConfig
    from medseg.data.nnunet import read_dataset
    from medseg.training.postprocessing import decide_postprocessing, save_postprocessing

    model_dir = Path(model_dir)
    fd = prepared or prepare_fold(read_dataset(data_dir), model_dir, fold, preprocess=False)
    val_ids = fd.val_ids
    if case_ids is not None:
        unknown = sorted(set(case_ids) - set(val_ids))
        if unknown:
            raise InputError(f"not validation cases of fold {fold}: {', '.join(unknown)}")
        val_ids = [c for c in val_ids if c in set(case_ids)]
    model = AutoModel(model_dir, PredictConfig(folds=(str(fold),), postprocess="off", tta=tta))
    out = model_dir / fold_name(fold) / "validation"
    res = _predict_cases(fd.dataset, model, val_ids, out)
    values = [v for v in model.plan.label_values if v]
    scored = scored_labels(fd, val_ids)
    pp = decide_postprocessing(res["preds"], res["gts"], values, scored=scored)
    save_postprocessing(pp, model_dir / "postprocessing.json")
    summary, rows = _score(res, val_ids, model.plan, pp["largest_component"], scored)
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps({"summary": summary, "cases": rows}, indent=1, default=str))
    overlays = []
    for cid, image in res["images"].items():
        i = val_ids.index(cid)
        path = model_dir / "report" / f"overlay_{cid}.png"
        overlays.append(_overlay(path, image, res["gts"][i], res["preds"][i]))
    return {
        "summary": summary,
        "cases": rows,
        "postprocessing": pp,
        "n_val": len(val_ids),
        "inference_s_per_case": res["seconds_per_case"],
        "overlays": overlays,
    }
