"""Time-budgeted training of a classifier with model selection on the validation split.

The test split is not touched during training; ``train`` reads it once, after the best
validation epoch is restored, and stores its metrics in ``report.json`` of the model folder.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medseg.classify.augment import AugmentConfig, augment_batch
from medseg.classify.data import Dataset, read_dataset
from medseg.classify.losses import check_loss
from medseg.classify.metrics import accuracy, auc, classification_report
from medseg.classify.model import Classifier, ClassifierConfig, build_classifier_net
from medseg.errors import InputError

__all__ = ["TrainOptions", "TrainResult", "train", "default_model", "baseline_options"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOptions:
    """How to train.

    Attributes:
        model: network name, ``"ensemble"`` (see ``ensemble``) or ``"auto"``
            (:func:`default_model`: an ensemble of tinyvit and efficientnet-lite0 for 2D,
            cnn3d for 3D).
        time_budget_s: wall-clock limit of the training loop (evaluation included).
        max_epochs: stop earlier when reached.
        batch_size: samples per step.
        lr: peak learning rate (AdamW; cosine decay over the budget after a short warm-up).
        weight_decay: AdamW weight decay.
        schedule: ``"cosine"`` or ``"step"`` (x0.1 at 50 % and 75 % of the run, MedMNIST).
        input_size: edge length the network sees (default: per model, see ``_input_size``).
        augment: augmentation; ``AugmentConfig(enabled=False)`` for none.
        label_smoothing: cross-entropy label smoothing (not for multi-label).
        loss: ``ce``, or for ordinal grades ``ordinal`` (cross-entropy + cumulative
            ``P(y > k)`` BCE) or ``sord`` (soft labels toward neighbours); see
            :mod:`medseg.classify.losses`.
        select: validation metric that picks the epoch kept: ``auc``, ``acc`` or ``auc+acc``.
        tta: flip test-time augmentation in the saved classifier.
        seed: seeds torch and NumPy.
        threads: torch CPU threads (None: leave as is).
        progress: show a tqdm bar.
        feature_cache: ``tinyvit``: feature cache folder (default ``$MEDSEG_FEATURE_CACHE``
            or ``~/.cache/medseg/classify``).
        feature_slices: ``tinyvit``: slices per axis encoded from each 3D volume.
        feature_augment_copies: ``tinyvit``: augmented copies of the train split (``augment``
            applied once per copy, seeded) encoded and added to the head's training data;
            None: 1 when ``model="auto"`` (the measured 2D default), else 0.
        feature_corrupt_copies: ``tinyvit``: corrupted copies of the train split (each
            image under one MedMNIST-C corruption of the data set's official set, Gaussian
            noise with probability ``feature_corrupt_noise_p``, severity 1..5; seeded,
            cached; :func:`medseg.classify.augment.corrupted_copy`) added to the head's
            training data; None: :data:`DEFAULT_CORRUPT_COPIES` when ``model="auto"``, else 0.
        feature_corrupt_noise_p: share of Gaussian noise in those copies.
        feature_corrupt_fraction: share of the train images each corrupted copy holds (a
            seeded random subset; fewer images to encode on a slow CPU).
        ensemble: with ``model="ensemble"``: the member names (networks, or ``baseline``),
            trained one after the other, probabilities averaged (:mod:`.ensemble`).

    With ``model="tinyvit"`` the budget bounds the head search (the images are encoded
    first, once, whatever the budget), ``max_epochs`` caps the number of heads tried, and
    ``augment`` is used only through ``feature_augment_copies`` (the features are frozen).
    """

    model: str = "auto"
    time_budget_s: float = 600.0
    max_epochs: int = 200
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    input_size: int | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    label_smoothing: float = 0.0
    loss: str = "ce"
    select: str = "auc"
    tta: bool = False
    seed: int = 0
    threads: int | None = None
    progress: bool = True
    feature_cache: str | None = None
    feature_slices: int = 1
    feature_augment_copies: int | None = None
    feature_corrupt_copies: int | None = None
    feature_corrupt_noise_p: float = 0.5
    feature_corrupt_fraction: float = 1.0
    ensemble: tuple[str, ...] = ()


def baseline_options(**overrides: Any) -> TrainOptions:
    """The MedMNIST v2 ResNet-18 recipe: Adam 1e-3, batch 128, step decay, no augmentation."""
    opts = TrainOptions(
        model="resnet18",
        batch_size=128,
        lr=1e-3,
        weight_decay=0.0,
        schedule="step",
        augment=AugmentConfig(enabled=False),
    )
    return dataclasses.replace(opts, **overrides)


@dataclass
class TrainResult:
    """What ``train`` returns: the classifier (best validation epoch) and its numbers."""

    classifier: Classifier
    history: list[dict[str, float]]
    best_epoch: int
    val: dict[str, float]
    test: dict[str, Any] | None
    elapsed_s: float
    out: Path | None = None


# members of the 2D default ensemble; tinyvit first: its head search is short, so
# efficientnet-lite0 gets most of the time budget (each member: an equal share of what is left)
DEFAULT_ENSEMBLE_2D = ("tinyvit", "efficientnet-lite0")
DEFAULT_CORRUPT_COPIES = 0  # tinyvit corrupted train copies under model="auto"


def default_model(spatial_dims: int) -> str:
    """The model ``"auto"`` picks, by validation score (docs/benchmarks.md, Classification).

    2D: ``ensemble`` of :data:`DEFAULT_ENSEMBLE_2D` (tinyvit with one augmented train copy,
    ``feature_augment_copies`` None -> 1, and efficientnet-lite0), probabilities averaged:
    validation AUC on RetinaMNIST (same splits, seed 0) 0.860 / ACC 0.600, against 0.848 /
    0.550 for tinyvit with the copy alone, 0.842 for efficientnet-lite0 (20 epochs) and 0.817
    for the ResNet-18 baseline (``benchmarks/classify_ensemble.py``; a third member, plain
    tinyvit, scored 0.0003 higher, within noise). 3D: ``cnn3d`` (AdrenalMNIST3D)."""
    return "ensemble" if spatial_dims == 2 else "cnn3d"


def _resolve(opts: TrainOptions, spatial_dims: int) -> TrainOptions:
    """``opts`` with ``model="auto"`` and ``feature_augment_copies=None`` made concrete."""
    auto = opts.model == "auto"
    model = default_model(spatial_dims) if auto else opts.model
    members = opts.ensemble or (DEFAULT_ENSEMBLE_2D if auto and model == "ensemble" else ())
    copies = opts.feature_augment_copies
    if copies is None:
        copies = 1 if auto and model in ("tinyvit", "ensemble") else 0
    corrupt = opts.feature_corrupt_copies
    if corrupt is None:
        corrupt = DEFAULT_CORRUPT_COPIES if auto and model in ("tinyvit", "ensemble") else 0
    return dataclasses.replace(opts, model=model, feature_augment_copies=copies,
                               feature_corrupt_copies=corrupt, ensemble=members)  # fmt: skip


def _input_size(model: str, data_size: int, wanted: int | None) -> int:
    if wanted:
        return wanted
    if model == "tinyvit":
        return 256  # LiteMedSAM's encoder input (informational: resized by the encoder)
    if model == "efficientnet-lite0":
        return max(64, data_size)  # ImageNet features need some resolution; 28 px is too few
    return data_size


def _lr_factor(opts: TrainOptions, frac: float) -> float:
    if opts.schedule == "step":
        return 1.0 if frac < 0.5 else (0.1 if frac < 0.75 else 0.01)
    warm = 0.03
    if frac < warm:
        return max(frac / warm, 0.05)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (frac - warm) / (1 - warm))))


def _loss_fn(task: str, smoothing: float, loss: str = "ce") -> Any:
    from medseg.classify.losses import make_loss

    return make_loss(task, loss, smoothing)


def _val_score(select: str, metrics: dict[str, float]) -> float:
    if select not in ("auc", "acc", "auc+acc"):
        raise InputError(f"select must be auc, acc or auc+acc, got {select!r}")
    value = sum(metrics[k] for k in select.split("+"))
    return -1.0 if np.isnan(value) else value


def _evaluate_split(clf: Classifier, ds: Dataset, split: str) -> dict[str, float]:
    scores = clf.predict_proba(ds.images[split])
    return {
        "auc": auc(ds.labels[split], scores, ds.task),
        "acc": accuracy(ds.labels[split], scores, ds.task),
    }


def _epoch(net: Any, opt: Any, ds: Dataset, opts: TrainOptions, state: dict[str, Any]) -> float:
    """One pass over the shuffled training split; returns the mean loss (stops at the budget)."""
    import torch

    x_all, y_all = ds.images["train"], ds.labels["train"]
    rng, loss_fn = state["rng"], state["loss_fn"]
    order = rng.permutation(len(x_all))
    net.train()
    losses = []
    for i in range(0, len(order) - opts.batch_size // 4, opts.batch_size):
        idx = np.sort(order[i : i + opts.batch_size])
        if len(idx) < 2:  # batch norm needs two samples
            continue
        frac = max(state["elapsed"]() / opts.time_budget_s, state["step"] / state["max_steps"])
        if frac >= 1.0:
            break
        for group in opt.param_groups:
            group["lr"] = opts.lr * _lr_factor(opts, frac)
        x = augment_batch(torch.from_numpy(x_all[idx]), opts.augment, rng)
        y = torch.from_numpy(y_all[idx])
        y = y.float() if ds.task == "multi-label" else y
        loss = loss_fn(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        state["step"] += 1
        state["bar"].update(1)
    return float(np.mean(losses)) if losses else float("nan")


def _config(ds: Dataset, opts: TrainOptions) -> ClassifierConfig:
    model = default_model(ds.spatial_dims) if opts.model == "auto" else opts.model
    return ClassifierConfig(
        model=model,
        task=ds.task,
        classes=tuple(ds.classes),
        spatial_dims=ds.spatial_dims,
        in_channels=ds.in_channels,
        data_size=ds.image_size,
        input_size=_input_size(model, ds.image_size, opts.input_size),
        tta=opts.tta,
        feature_slices=opts.feature_slices,
    )


def _fit(ds: Dataset, opts: TrainOptions, config: ClassifierConfig) -> tuple[Classifier, list, int]:
    """The training loop; returns the classifier at the best validation epoch."""
    import torch
    from tqdm.auto import tqdm

    if config.model == "tinyvit":
        from medseg.classify.feature_head import fit_feature_head

        return fit_feature_head(ds, opts, config)

    net = build_classifier_net(config, pretrained=True)
    opt = torch.optim.AdamW(net.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(ds.labels["train"]) / opts.batch_size))
    start = time.monotonic()
    state: dict[str, Any] = {
        "rng": np.random.default_rng(opts.seed),
        "loss_fn": _loss_fn(config.task, opts.label_smoothing, opts.loss),
        "elapsed": lambda: time.monotonic() - start,
        "step": 0,
        "max_steps": opts.max_epochs * steps_per_epoch,
    }
    clf = Classifier(config, net)
    history: list[dict[str, float]] = []
    best, best_epoch, best_state = -math.inf, -1, copy.deepcopy(net.state_dict())
    with tqdm(
        total=state["max_steps"],
        desc=f"train {config.model}",
        disable=not opts.progress,
        unit="step",
    ) as bar:
        state["bar"] = bar
        for epoch in range(opts.max_epochs):
            loss = _epoch(net, opt, ds, opts, state)
            val = _evaluate_split(clf, ds, "val")
            history.append(
                {
                    "epoch": epoch,
                    "loss": loss,
                    "elapsed_s": state["elapsed"](),
                    **{f"val_{k}": v for k, v in val.items()},
                }
            )
            score = _val_score(opts.select, val)
            if score > best:
                best, best_epoch, best_state = score, epoch, copy.deepcopy(net.state_dict())
            bar.set_postfix(
                loss=f"{loss:.3f}", val_auc=f"{val['auc']:.3f}", val_acc=f"{val['acc']:.3f}"
            )
            if state["elapsed"]() >= opts.time_budget_s or state["step"] >= state["max_steps"]:
                break
    net.load_state_dict(best_state)
    net.eval()
    return clf, history, best_epoch


def train(
    data: str | Path | Dataset,
    out: str | Path | None = None,
    options: TrainOptions | None = None,
    evaluate_test: bool = True,
    **overrides: Any,
) -> TrainResult:
    """Train a classifier on ``data`` (a path read by ``read_dataset``, or a Dataset).

    Args:
        data: MedMNIST ``.npz``, folder of class sub-folders, ``path,label`` CSV or Dataset.
        out: model folder to write (``classifier.json``, ``weights.pt``, ``history.json``,
            ``report.json`` with top-level ``auc``/``acc`` of the test split, or of the
            validation split without ``evaluate_test``); None keeps the model in memory only.
        options: training options; ``overrides`` replace single fields of them.
        evaluate_test: read the test split once at the end and report its metrics.
    """
    import torch

    opts = dataclasses.replace(options or TrainOptions(), **overrides)
    ds = data if isinstance(data, Dataset) else read_dataset(data)
    check_loss(opts.loss, ds.task)
    opts = _resolve(opts, ds.spatial_dims)
    if opts.model == "ensemble":
        from medseg.classify.ensemble import train_ensemble

        return train_ensemble(ds, out, opts, evaluate_test)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    torch.manual_seed(opts.seed)
    config = _config(ds, opts)
    log.info(
        "training %s (%dD, %s, %d classes, input %d) for at most %.0f s",
        config.model,
        config.spatial_dims,
        config.task,
        len(config.classes),
        config.input_size,
        opts.time_budget_s,
    )
    start = time.monotonic()
    clf, history, best_epoch = _fit(ds, opts, config)
    elapsed = time.monotonic() - start
    val = {k[4:]: v for k, v in history[best_epoch].items() if k.startswith("val_")}
    test = None
    if evaluate_test:
        scores = clf.predict_proba(ds.images["test"])
        test = classification_report(
            ds.labels["test"], scores, ds.task, ds.classes, n_bootstrap=200
        )
    result = TrainResult(clf, history, best_epoch, val, test, elapsed)
    if out is not None:
        result.out = _write(result, Path(out), opts, ds)
    return result


def _write(result: TrainResult, out: Path, opts: TrainOptions, ds: Dataset) -> Path:
    result.classifier.save(out)
    (out / "history.json").write_text(json.dumps(result.history, indent=1))
    main = result.test if result.test is not None else result.val
    info = {
        "split": "test" if result.test is not None else "val",
        "auc": main["auc"],
        "acc": main["acc"],
        "model": result.classifier.config.model,
        "source": ds.source,
        "options": {k: v for k, v in dataclasses.asdict(opts).items()},
        "best_epoch": result.best_epoch,
        "epochs": len(result.history),
        "train_time_s": result.elapsed_s,
        "val": result.val,
        "test": result.test,
    }
    (out / "report.json").write_text(json.dumps(info, indent=1, default=float))
    return out
