"""Fine-tuning from a trained model: ``medseg auto train DATA --out NEW --init OLD``.

The new model folder takes the old model's plan (so the network, patch, normalisation and
spacing match the weights) and its training starts from the old fold's weights instead of
a random initialisation. The old folder is only read.

- :func:`resolve_init` finds the checkpoint: ``OLD`` (a model folder with exactly one
  trained fold) or ``OLD/fold_N``; ``checkpoint_final.pt``, else ``checkpoint_best.pt``.
- :func:`adopt_plan` checks that the new dataset has the plan's label set and channels and
  writes the plan (plus a note naming the source) to ``NEW/plans.json``; a ``NEW`` that
  already has a different network plan is refused.
- :func:`apply_init` loads the weights into a :class:`~medseg.training.trainer.Trainer`'s
  model (strictly: every tensor, same shapes) and records the source in
  ``NEW/fold_N/init.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from medseg.automatic.plan import Plan, load_plan, save_plan
from medseg.errors import InputError
from medseg.io.atomic import atomic_path

__all__ = [
    "INIT_LR",
    "InitSource",
    "resolve_init",
    "adopt_plan",
    "prepare_init",
    "apply_init",
    "init_note",
]

log = logging.getLogger(__name__)

#: Initial learning rate of a fine-tuning run: 1e-2, as from scratch. Measured on ISBI 2012
#: (200 iterations on 16 exported cases, benchmarks/auto_corrections.py): held-out Dice
#: 0.655 / 0.677 / 0.718 for 1e-3 / 3e-3 / 1e-2; a lower rate kept the model too close to
#: the old weights within a short fine-tune.
INIT_LR = 1e-2
#: Plan fields that may differ between the old and the new model (not the network).
_FREE_FIELDS = ("notes", "budget", "estimated_iteration_s", "estimated_iterations",
                "estimated_memory_mb", "median_shape")  # fmt: skip
_CHECKPOINTS = ("checkpoint_final.pt", "checkpoint_best.pt")


@dataclass(frozen=True)
class InitSource:
    """Where a fine-tuning run takes its weights: model folder, fold folder, checkpoint
    file and the old model's plan."""

    model_dir: Path
    fold_dir: Path
    checkpoint: Path
    plan: Plan

    def describe(self) -> str:
        return f"{self.model_dir} ({self.fold_dir.name}/{self.checkpoint.name})"


def _fold_checkpoint(fold_dir: Path) -> Path | None:
    for name in _CHECKPOINTS:
        if (fold_dir / name).is_file():
            return fold_dir / name
    return None


def resolve_init(path: str | Path) -> InitSource:
    """The checkpoint of ``path``: a model folder with one trained fold, or a fold folder.

    Raises ``InputError`` when there is no plan, no trained fold, or several folds (then
    the message lists them: pass ``OLD/fold_N``).
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"--init {path}: not a folder")
    if path.name.startswith("fold_") and not (path / "plans.json").is_file():
        model_dir, folds = path.parent, [path]
    else:
        model_dir = path
        folds = sorted(d for d in path.glob("fold_*") if _fold_checkpoint(d) is not None)
    if not (model_dir / "plans.json").is_file():
        raise InputError(f"--init {path}: {model_dir} has no plans.json (not a medseg auto model)")
    if not folds:
        raise InputError(f"--init {path}: no fold_*/checkpoint_final.pt or checkpoint_best.pt")
    if len(folds) > 1:
        names = ", ".join(d.name for d in folds)
        raise InputError(f"--init {path}: several trained folds ({names}); pass one, e.g. "
                         f"--init {model_dir / folds[0].name}")  # fmt: skip
    ckpt = _fold_checkpoint(folds[0])
    if ckpt is None:
        raise InputError(f"--init {path}: no checkpoint_final.pt or checkpoint_best.pt")
    return InitSource(model_dir, folds[0], ckpt, load_plan(model_dir / "plans.json"))


def init_note(source: InitSource) -> str:
    """The plan note of a fine-tuned model (shown in the ``auto run`` report)."""
    return f"initialised from the weights of {source.describe()}, with its plan"


def _network_fields(plan: Plan) -> dict[str, Any]:
    d = plan.to_dict()
    return {k: v for k, v in d.items() if k not in _FREE_FIELDS}


def _check_dataset(plan: Plan, dataset: Any, source: InitSource) -> None:
    """Refuse a dataset whose labels or channels are not the old model's."""
    want = {int(v): plan.label_names.get(int(v), "") for v in plan.label_values}
    got = {int(v): n for v, n in dataset.label_names.items()}
    if set(got) != set(want) or any(want[v] and want[v] != got[v] for v in got):
        raise InputError(
            f"--init {source.model_dir}: the dataset's labels {_fmt(got)} differ from the "
            f"model's {_fmt(want)}; fine-tuning needs the same label set"
        )
    channels = tuple(dataset.channel_names[i] for i in sorted(dataset.channel_names))
    if len(channels) != len(plan.channel_names):
        raise InputError(
            f"--init {source.model_dir}: the dataset has {len(channels)} channel(s) "
            f"{list(channels)}, the model {len(plan.channel_names)} "
            f"{list(plan.channel_names)}; fine-tuning needs the same channels"
        )
    if channels != tuple(plan.channel_names):  # same count: normalised as the old plan says
        log.warning("channel names %s differ from the model's %s; normalising as the model "
                    "does", list(channels), list(plan.channel_names))  # fmt: skip


def _fmt(labels: dict[int, str]) -> str:
    return "{" + ", ".join(f"{v}: {n!r}" for v, n in sorted(labels.items())) + "}"


def adopt_plan(source: InitSource, data_dir: str | Path, model_dir: str | Path) -> Plan:
    """Write the old plan (with :func:`init_note`) and the dataset's ``dataset.json`` into
    ``model_dir``; returns the plan. An existing ``model_dir/plans.json`` is kept when its
    network is the old one (a resumed run), else refused."""
    from medseg.data.nnunet import read_dataset

    data_dir, model_dir = Path(data_dir), Path(model_dir)
    if model_dir.resolve() == source.model_dir.resolve():
        raise InputError(f"--init {source.model_dir}: --out must be another folder "
                         "(the initial model is never changed)")  # fmt: skip
    ds = read_dataset(data_dir)
    if ds.problems:
        raise InputError(f"{ds.root}: {ds.problems[0]} (run medseg auto check for all problems)")
    _check_dataset(source.plan, ds, source)
    path = model_dir / "plans.json"
    if path.is_file():
        existing = load_plan(path)
        if _network_fields(existing) != _network_fields(source.plan):
            raise InputError(f"{path}: {model_dir} already holds a model with another plan; "
                             f"use a new --out folder to fine-tune {source.model_dir}")  # fmt: skip
        return existing
    note = init_note(source)
    plan = replace(source.plan, notes=(*[n for n in source.plan.notes if n != note], note))
    model_dir.mkdir(parents=True, exist_ok=True)
    save_plan(plan, path)
    for name in ("fingerprint.json",):  # the plan's statistics came from the old data
        if (source.model_dir / name).is_file():
            with atomic_path(model_dir / name) as tmp:
                shutil.copyfile(source.model_dir / name, tmp)
    with atomic_path(model_dir / "dataset.json") as tmp:
        shutil.copyfile(ds.root / "dataset.json", tmp)
    log.info("plan: %s", note)
    return plan


def prepare_init(path: str | Path, data_dir: str | Path, model_dir: str | Path) -> InitSource:
    """:func:`resolve_init` then :func:`adopt_plan`: the source, its plan in ``model_dir``."""
    source = resolve_init(path)
    adopt_plan(source, data_dir, model_dir)
    return source


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def apply_init(trainer: Any, source: InitSource) -> dict[str, Any]:
    """Load ``source``'s weights into ``trainer.model`` (strict) and write
    ``trainer.out/init.json``; returns its content.

    Only the weights are taken: the optimizer (momentum), iteration counters and schedule
    start fresh. Raises ``InputError`` when the tensors do not fit the network.
    """
    state = torch.load(source.checkpoint, map_location="cpu", weights_only=False)
    weights = state.get("model") if isinstance(state, dict) else None
    if not isinstance(weights, dict):
        raise InputError(f"{source.checkpoint}: no model weights in the checkpoint")
    try:
        trainer.model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise InputError(f"{source.checkpoint}: the weights do not fit the network of the "
                         f"plan ({first[0] if first else exc})") from exc  # fmt: skip
    info = {
        "model_dir": str(source.model_dir.resolve()),
        "fold": source.fold_dir.name,
        "checkpoint": source.checkpoint.name,
        "checkpoint_sha256": _sha256(source.checkpoint),
        "checkpoint_iteration": state.get("iteration"),
        "initial_lr": trainer.cfg.initial_lr,
    }
    if trainer.dist.is_main:
        trainer.out.mkdir(parents=True, exist_ok=True)
        with atomic_path(trainer.out / "init.json") as tmp:
            tmp.write_text(json.dumps(info, indent=2) + "\n")
    log.info("initialised the network from %s", source.describe())
    return info
