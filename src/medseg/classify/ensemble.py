"""An ensemble of classifiers: the weighted mean of the members' class probabilities.

``medseg classify train DATA --out DIR --ensemble tinyvit,efficientnet-lite0,baseline``
trains each member by :func:`medseg.classify.train` (the same code as a single model, each
with its validation selection; ``baseline`` is the MedMNIST ResNet-18 recipe) into
``DIR/members/<i>-<name>/`` and writes ``DIR/classifier.json`` with ``"model": "ensemble"``,
the member folders and their weights. :func:`medseg.classify.load` reads such a folder like
any other model folder, so ``predict`` and ``evaluate`` work unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg.classify.model import CONFIG_FILE, Classifier, ClassifierConfig
from medseg.errors import InputError, ModelError

__all__ = [
    "ENSEMBLE",
    "MEMBERS_DIR",
    "MEMBER_PRESETS",
    "EnsembleClassifier",
    "mean_proba",
    "is_ensemble_folder",
    "load_ensemble",
    "member_options",
    "train_ensemble",
]

log = logging.getLogger(__name__)

ENSEMBLE = "ensemble"
MEMBERS_DIR = "members"
BASELINE = "baseline"  # member name of the MedMNIST ResNet-18 recipe
#: tinyvit member presets: name -> TrainOptions fields (``benchmarks/classify_ensemble.py``):
#: one augmented train copy, or one corrupted copy (official MedMNIST-C set) of 30 % of train
#: or of all of it (the 30 % are the same corrupted images, so their features are shared)
MEMBER_PRESETS: dict[str, dict[str, Any]] = {
    "tinyvit-aug": {"model": "tinyvit", "feature_augment_copies": 1, "feature_corrupt_copies": 0},
    "tinyvit-noise": {
        "model": "tinyvit",
        "feature_augment_copies": 0,
        "feature_corrupt_copies": 1,
        "feature_corrupt_fraction": 0.3,
    },
    "tinyvit-noise-full": {
        "model": "tinyvit",
        "feature_augment_copies": 0,
        "feature_corrupt_copies": 1,
        "feature_corrupt_fraction": 1.0,
    },
}


def mean_proba(probas: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted mean ``(N, K)`` of member probabilities, each ``(N, K)``; ``weights``
    (default equal) are normalised to sum 1."""
    if not probas:
        raise InputError("an ensemble needs at least one member")
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in probas])
    w = np.ones(len(stack)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(stack),) or np.any(w < 0) or w.sum() <= 0:
        raise InputError(f"need {len(stack)} non-negative weights with a positive sum, got {w}")
    return np.tensordot(w / w.sum(), stack, axes=1)


def _ensemble_config(members: Sequence[Classifier]) -> ClassifierConfig:
    """The ensemble's configuration; ModelError if the members disagree on the data."""
    first = members[0].config
    for m in members[1:]:
        c = m.config
        same = (c.task, c.classes, c.spatial_dims, c.in_channels, c.data_size)
        if same != (first.task, first.classes, first.spatial_dims, first.in_channels,
                    first.data_size):  # fmt: skip
            raise ModelError(
                f"ensemble members disagree: {c.model} ({c.task}, {len(c.classes)} classes, "
                f"{c.spatial_dims}D, size {c.data_size}) vs {first.model} ({first.task}, "
                f"{len(first.classes)} classes, {first.spatial_dims}D, size {first.data_size})"
            )
    return dataclasses.replace(first, model=ENSEMBLE, input_size=first.data_size, tta=False)


class EnsembleClassifier(Classifier):
    """Members' probabilities averaged (:func:`mean_proba`); images as for any
    :class:`Classifier`: arrays ``(N, C, *spatial)`` in ``[0, 1]`` or files.

    Args:
        members: trained classifiers of the same task, classes and image size.
        names: one label per member (folder names; default their model names).
        weights: one non-negative weight per member (default equal).
    """

    def __init__(
        self,
        members: Sequence[Classifier],
        names: Sequence[str] | None = None,
        weights: Sequence[float] | None = None,
    ) -> None:
        if len(members) < 1:
            raise InputError("an ensemble needs at least one member")
        self.members = list(members)
        self.names = list(names) if names is not None else [m.config.model for m in members]
        self.weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        if len(self.names) != len(self.members) or len(self.weights) != len(self.members):
            raise InputError("an ensemble needs one name and one weight per member")
        mean_proba([np.ones((1, 1))] * len(self.members), self.weights)  # validates weights
        self.config = _ensemble_config(self.members)
        self.net = None

    def member_probas(self, images: np.ndarray | Sequence[str | Path]) -> list[np.ndarray]:
        """Each member's ``(N, K)`` probabilities (files are read once)."""
        arr = self._as_array(images)
        return [m.predict_proba(arr) for m in self.members]

    def predict_proba(
        self, images: np.ndarray | Sequence[str | Path], batch_size: int = 64
    ) -> np.ndarray:
        """``(N, K)``: the weighted mean of the members' probabilities."""
        return mean_proba(self.member_probas(images), self.weights)

    def explained_member(self) -> Classifier:
        """The member whose Grad-CAM stands for the ensemble's: the first CNN, else the first."""
        for m in self.members:
            if m.config.model != "tinyvit":
                return m
        return self.members[0]

    def member_dirs(self) -> list[str]:
        """Member folders relative to the ensemble folder."""
        return [f"{MEMBERS_DIR}/{i}-{name}" for i, name in enumerate(self.names)]

    def save(self, folder: str | Path) -> Path:
        """Write every member into ``folder/members/<i>-<name>/`` and ``classifier.json``
        (the ensemble's configuration plus ``members`` and ``weights``)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for member, sub in zip(self.members, self.member_dirs(), strict=True):
            member.save(folder / sub)
        data = dataclasses.asdict(self.config)
        data.update(members=self.member_dirs(), weights=self.weights)
        (folder / CONFIG_FILE).write_text(json.dumps(data, indent=2))
        return folder


def is_ensemble_folder(folder: str | Path) -> bool:
    """True if ``folder/classifier.json`` says ``"model": "ensemble"``."""
    path = Path(folder) / CONFIG_FILE
    try:
        return json.loads(path.read_text()).get("model") == ENSEMBLE
    except (OSError, ValueError, AttributeError):
        return False


def load_ensemble(folder: str | Path) -> EnsembleClassifier:
    """Read an ensemble folder written by :meth:`EnsembleClassifier.save`."""
    from medseg.classify.model import load

    folder = Path(folder)
    cfg_path = folder / CONFIG_FILE
    try:
        data = json.loads(cfg_path.read_text())
        subs, weights = list(data["members"]), [float(w) for w in data["weights"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{cfg_path}: unusable ensemble configuration: {exc}") from exc
    if not subs:
        raise ModelError(f"{cfg_path}: the ensemble lists no members")
    members = []
    for sub in subs:
        if Path(sub).is_absolute() or ".." in Path(sub).parts:
            raise ModelError(f"{cfg_path}: member folder {sub!r} is not inside the ensemble")
        members.append(load(folder / sub))
    names = [Path(s).name.split("-", 1)[-1] for s in subs]
    return EnsembleClassifier(members, names, weights)


def member_options(name: str, opts: Any, budget: float) -> Any:
    """TrainOptions of member ``name``: ``baseline`` is the MedMNIST ResNet-18 recipe, a key
    of :data:`MEMBER_PRESETS` ``opts`` with that preset's fields, any other name a network
    trained with ``opts``; with time budget ``budget`` (seconds) and ``opts.max_epochs``."""
    from medseg.classify.networks import NETWORKS
    from medseg.classify.train import baseline_options

    if name == BASELINE:
        return baseline_options(
            time_budget_s=budget, max_epochs=opts.max_epochs, select=opts.select,
            seed=opts.seed, threads=opts.threads, progress=opts.progress,
        )  # fmt: skip
    if name in MEMBER_PRESETS:
        return dataclasses.replace(opts, ensemble=(), time_budget_s=budget, **MEMBER_PRESETS[name])
    if name not in NETWORKS:
        choices = [*NETWORKS, BASELINE, *MEMBER_PRESETS]
        raise InputError(f"unknown ensemble member {name!r}; choose from {choices}")
    return dataclasses.replace(opts, model=name, ensemble=(), time_budget_s=budget)


def train_ensemble(ds: Any, out: str | Path | None, opts: Any, evaluate_test: bool) -> Any:
    """Train the members ``opts.ensemble`` (see :func:`member_options`) on ``ds`` in order,
    each into ``out/members/<i>-<name>`` when ``out`` is given, and combine them with equal
    weights. Each member gets an equal share of the budget still left when it starts (a
    fast member first, e.g. ``tinyvit``, leaves more to the next).
    Returns a TrainResult whose history has one row per member and a last row for the
    ensemble (validation AUC/ACC); the test split is read once, at the end."""
    from medseg.classify.metrics import accuracy, auc, classification_report
    from medseg.classify.train import TrainResult, _write, train

    names = list(opts.ensemble)
    if len(names) < 2:
        raise InputError(f"an ensemble needs at least two members, got {names}")
    for name in names:  # unknown names fail before anything is trained
        member_options(name, opts, opts.time_budget_s)
    start = time.monotonic()
    members, history = [], []
    for i, name in enumerate(names):
        left = max(opts.time_budget_s - (time.monotonic() - start), 1.0)
        member_opts = member_options(name, opts, left / (len(names) - i))
        sub = None if out is None else Path(out) / MEMBERS_DIR / f"{i}-{name}"
        log.info("ensemble member %d/%d: %s", i + 1, len(names), name)
        res = train(ds, sub, member_opts, evaluate_test=False)
        members.append(res.classifier)
        row = {"epoch": i, "member": name, "network": res.classifier.config.model}
        row.update(epochs=len(res.history), elapsed_s=time.monotonic() - start)
        row.update({f"val_{k}": v for k, v in res.val.items()})
        history.append(row)
    ens = EnsembleClassifier(members, names)
    scores = ens.predict_proba(ds.images["val"])
    val = {
        "auc": auc(ds.labels["val"], scores, ds.task),
        "acc": accuracy(ds.labels["val"], scores, ds.task),
    }
    history.append({"epoch": len(names), "member": ENSEMBLE, "elapsed_s": time.monotonic() - start,
                    **{f"val_{k}": v for k, v in val.items()}})  # fmt: skip
    test = None
    if evaluate_test:
        test = classification_report(
            ds.labels["test"], ens.predict_proba(ds.images["test"]), ds.task, ds.classes,
            n_bootstrap=200,
        )  # fmt: skip
    result = TrainResult(ens, history, len(names), val, test, time.monotonic() - start)
    if out is not None:
        result.out = _write(result, Path(out), opts, ds)
    return result
