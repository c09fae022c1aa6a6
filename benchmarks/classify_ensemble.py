"""RetinaMNIST: ensemble of classifiers, ordinal decision rules and corruption-robust members.

Three stages, selection on the validation split only; the test split is read once per final
candidate (``--final``), clean and under the MedMNIST-C corruptions at severity 3.

1. ``train``: each member of ``MEMBERS`` is trained by :func:`medseg.classify.train` (the
   same code as ``medseg classify train``; fixed-epoch schedule with a generous budget, so the
   numbers do not depend on the machine's load) into ``--out/<member>``, and its validation
   probabilities are stored beside it (``val_proba.npy``). A member folder that exists is
   reused (``--retrain`` trains it again).
2. ``select``: every subset of the trained members (equal-weight mean of the class
   probabilities, :mod:`medseg.classify.ensemble`) and every decision rule
   (:mod:`medseg.classify.decision`) is scored on validation; nothing reads the test split.
3. ``--final A+B ...``: builds the ensemble folder of each named candidate (loaded back by
   ``medseg.classify.load`` like any model folder) and evaluates it on the test split once.

    nice -n 10 python benchmarks/classify_ensemble.py --threads 1 --epochs 20 \
        --feature-cache /work/cache/classify --out /work/out/ensemble/members --train-only
    nice -n 10 python benchmarks/classify_ensemble.py --threads 1 --epochs 20 \
        --feature-cache /work/cache/classify --out /work/out/ensemble/members \
        --final efficientnet-lite0+tinyvit+tinyvit-aug efficientnet-lite0+tinyvit-aug \
        resnet18-baseline --json benchmarks/results/classify_retinamnist_ensemble.json

Robust selection (``--robust-families [FAMILY ...]``, none named: all eight): every subset
of the members with integer weights 1..``--weight-steps``, scored on the validation split
under RetinaMNIST's official MedMNIST-C families at ``--severity`` (probabilities cached as
``val_proba_<family>_s<N>.npy`` beside each member); ``--corruptions official`` makes
``--final`` read the test split under the same official set. A candidate is
``member[:weight]+member[:weight]``.

Without ``--train-only`` the selection covers the members named by ``--members`` (default
all), training any that are missing first. A member's validation AUC drop under the
corruptions (CNN members only) is stored as ``val_drop_s<N>.json`` beside it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from medseg.classify import evaluate_corruptions, load, read_dataset, train
from medseg.classify.augment import AugmentConfig
from medseg.classify.corrupt import corruption_names
from medseg.classify.decision import cv_accuracy, decide, fit_thresholds
from medseg.classify.ensemble import MEMBER_PRESETS, EnsembleClassifier, mean_proba
from medseg.classify.feature_head import CACHE_ENV
from medseg.classify.metrics import accuracy, auc, classification_report
from medseg.classify.train import TrainOptions, baseline_options

__all__ = ["main", "MEMBERS"]

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "medmnist" / "retinamnist.npz"
# member name -> TrainOptions fields (seed, threads, epochs, budget are added by main)
MEMBERS = {
    "efficientnet-lite0": {"model": "efficientnet-lite0"},
    "tinyvit": {"model": "tinyvit", "feature_augment_copies": 0},
    "efficientnet-lite0-c1": {
        "model": "efficientnet-lite0",
        "augment": AugmentConfig(corrupt_p=1.0),
    },
    "resnet18-baseline": {"baseline": True},
    # tinyvit-aug, tinyvit-noise (a corrupted copy of 30 % of train: what the shared CPU could
    # encode in the time), tinyvit-noise-full (all of train; the same 30 % hit the cache)
    **MEMBER_PRESETS,
    "tinyvit-aug-noise": {**MEMBER_PRESETS["tinyvit-noise"], "feature_augment_copies": 1},
}
OFFICIAL = "retinamnist"  # the official MedMNIST-C set of this file (corrupt_sets)


def member_options(name: str, common: dict) -> TrainOptions:
    """TrainOptions of member ``name`` (see :data:`MEMBERS`) with ``common`` fields."""
    spec = dict(MEMBERS[name])
    if spec.pop("baseline", False):
        return baseline_options(**common, **spec)
    return TrainOptions(**{**common, **spec})


def train_members(names: list[str], out: Path, common: dict, retrain: bool) -> dict[str, dict]:
    """Train (or reuse) each member into ``out/<name>``; returns name -> record with the
    validation metrics and training time."""
    ds = read_dataset(DATA)
    records: dict[str, dict] = {}
    for name in names:
        folder = out / name
        rec_path = folder / "member.json"
        if rec_path.is_file() and not retrain:
            records[name] = json.loads(rec_path.read_text())
            continue
        opts = member_options(name, common)
        result = train(ds, folder, opts, evaluate_test=False)
        np.save(folder / "val_proba.npy", result.classifier.predict_proba(ds.images["val"]))
        rec = {
            "member": name,
            "network": result.classifier.config.model,
            "train_s": round(result.elapsed_s, 1),
            "epochs": len(result.history),
            "best_epoch": result.best_epoch,
            "val": result.val,
        }
        rec_path.write_text(json.dumps(rec, indent=1))
        records[name] = rec
        logging.info("member %s: %s", name, rec)
    return records


def _rules(labels: np.ndarray, proba: np.ndarray, val: tuple | None = None) -> dict:
    """ACC of each decision rule. Without ``val``: on ``labels`` itself (thresholds
    out-of-fold, 5-fold, and in-sample); with ``val = (labels, proba)``: thresholds fitted on
    it and applied to ``proba``."""
    acc = {r: float(np.mean(decide(proba, r) == labels)) for r in ("argmax", "round")}
    if val is None:
        acc["thresholds_cv"] = cv_accuracy(labels, proba)
        t = fit_thresholds(labels, proba)
        acc["thresholds_in_sample"] = float(np.mean(decide(proba, "thresholds", t) == labels))
    else:
        t = fit_thresholds(*val)
        acc["thresholds"] = float(np.mean(decide(proba, "thresholds", t) == labels))
    acc["fitted_thresholds"] = t
    return acc


def val_drops(out: Path, names: list[str], severity: int) -> dict[str, float]:
    """Validation-split AUC drop under the corruptions at ``severity`` of each CNN member
    (tinyvit members are skipped: 720 new encodings); cached in ``val_drop_s<N>.json``."""
    ds = read_dataset(DATA)
    x, y = ds.images["val"], ds.labels["val"]
    drops = {}
    for name in names:
        path = out / name / f"val_drop_s{severity}.json"
        if not (out / name).is_dir() or MEMBERS[name].get("model") == "tinyvit":
            continue
        if not path.is_file():
            clf = load(out / name)
            clean = auc(y, clf.predict_proba(x), ds.task)
            corr = evaluate_corruptions(clf, x, y, ds.task, (severity,))
            drop = clean - float(np.mean([v[str(severity)]["auc"] for v in corr.values()]))
            path.write_text(json.dumps({"clean": clean, "drop": drop, "corrupted": corr}))
        drops[name] = json.loads(path.read_text())["drop"]
    return drops


def val_corrupt_probas(
    out: Path, names: list[str], families: list[str], severity: int
) -> dict[str, dict[str, np.ndarray]]:
    """Validation probabilities of each trained member under each official family at
    ``severity`` (seed 0, as ``evaluate_corruptions``), cached as
    ``val_proba_<family>_s<N>.npy`` beside the member."""
    from medseg.classify.corrupt import corrupt_batch

    ds = read_dataset(DATA)
    probs: dict[str, dict[str, np.ndarray]] = {}
    for name in names:
        if not (out / name).is_dir():
            continue
        clf, probs[name] = None, {}
        for fam in families:
            path = out / name / f"val_proba_{fam}_s{severity}.npy"
            if not path.is_file():
                clf = clf or load(out / name)
                x = corrupt_batch(ds.images["val"], fam, severity, 0, OFFICIAL)
                np.save(path, clf.predict_proba(x))
            probs[name][fam] = np.load(path)
    return probs


def _weights(k: int, steps: int) -> list[tuple[int, ...]]:
    """Integer weight vectors of ``k`` members, each 1..``steps``, without common factor."""
    import math

    out = []
    for w in itertools.product(range(1, steps + 1), repeat=k):
        if math.gcd(*w) == 1:
            out.append(w)
    return out


def select_robust(
    out: Path, names: list[str], families: list[str], severity: int, steps: int
) -> list[dict]:
    """Every subset of the members and integer weights 1..``steps``, scored on validation:
    clean AUC and the mean AUC drop over ``families`` (official set, ``severity``)."""
    ds = read_dataset(DATA)
    y = ds.labels["val"]
    clean = {n: np.load(out / n / "val_proba.npy") for n in names if (out / n).is_dir()}
    corr = val_corrupt_probas(out, list(clean), families, severity)
    rows = []
    for k in range(1, len(clean) + 1):
        for combo in itertools.combinations(clean, k):
            for w in _weights(k, steps) if k > 1 else [(1,)]:
                a = auc(y, mean_proba([clean[n] for n in combo], w), ds.task)
                per = {f: auc(y, mean_proba([corr[n][f] for n in combo], w), ds.task)
                       for f in families}  # fmt: skip
                label = "+".join(f"{n}:{wi}" for n, wi in zip(combo, w, strict=True))
                rows.append({"candidate": label, "val_auc": a, "val_corrupted_auc": per,
                             "val_drop": a - float(np.mean(list(per.values())))})  # fmt: skip
    return sorted(rows, key=lambda r: (r["val_drop"], -r["val_auc"]))


def select(out: Path, names: list[str]) -> list[dict]:
    """Every subset of the trained members, scored on the validation split only (equal-weight
    mean of their stored validation probabilities), best validation AUC first."""
    ds = read_dataset(DATA)
    y = ds.labels["val"]
    probs = {n: np.load(out / n / "val_proba.npy") for n in names if (out / n).is_dir()}
    rows = []
    for k in range(1, len(probs) + 1):
        for combo in itertools.combinations(probs, k):
            p = mean_proba([probs[n] for n in combo])
            rows.append(
                {"candidate": "+".join(combo), "val_auc": auc(y, p, ds.task), **_rules(y, p)}
            )
    return sorted(rows, key=lambda r: (-r["val_auc"], -r["argmax"]))


def final(out: Path, candidate: str, severity: int, dataset: str | None = None) -> dict:
    """Build the candidate's model folder (an ensemble, or the member itself), load it back
    and read the test split once: clean report, decision rules, corruptions at ``severity``
    (``dataset``: that official MedMNIST-C set, else the generic one)."""
    ds = read_dataset(DATA)
    parts = [p.split(":") for p in candidate.split("+")]  # member[:weight]
    names = [p[0] for p in parts]
    weights = [float(p[1]) if len(p) > 1 else 1.0 for p in parts]
    if len(names) == 1:
        folder = out / names[0]
    else:
        ens = EnsembleClassifier([load(out / n) for n in names], names, weights)
        folder = ens.save(out / f"ensemble_{candidate.replace(':', '_')}")
    clf = load(folder)
    val_p = clf.predict_proba(ds.images["val"])
    x, y = ds.images["test"], ds.labels["test"]
    t0 = time.monotonic()
    scores = clf.predict_proba(x)
    rep = classification_report(y, scores, ds.task, clf.classes, n_bootstrap=1000)
    corr = evaluate_corruptions(clf, x, y, ds.task, (severity,), dataset=dataset)
    corr = {k: v[str(severity)] for k, v in corr.items()}
    drop = rep["auc"] - float(np.mean([c["auc"] for c in corr.values()]))
    train_s = sum(json.loads((out / n / "member.json").read_text())["train_s"] for n in names)
    return {
        "candidate": candidate,
        "folder": str(folder),
        "train_s": round(train_s, 1),
        "eval_s": round(time.monotonic() - t0, 1),
        "val_auc": auc(ds.labels["val"], val_p, ds.task),
        "val_acc": accuracy(ds.labels["val"], val_p, ds.task),
        "auc": rep["auc"],
        "acc": rep["acc"],
        "auc_ci95": rep["auc_ci95"],
        "acc_ci95": rep["acc_ci95"],
        "balanced_acc": rep["balanced_acc"],
        "ece": rep["ece"],
        "test_acc_by_rule": _rules(y, scores, (ds.labels["val"], val_p)),
        "corrupted": corr,
        "auc_drop": drop,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--budget", type=float, default=100000.0, help="seconds per member")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--members", nargs="+", default=list(MEMBERS), choices=list(MEMBERS))
    parser.add_argument("--feature-cache", default=None, help="tinyvit feature cache")
    parser.add_argument("--out", type=Path, default=Path("/tmp/medseg_classify_ensemble"))
    parser.add_argument("--retrain", action="store_true", help="train existing members again")
    parser.add_argument("--train-only", action="store_true", help="stage 1 only")
    parser.add_argument(
        "--final", nargs="+", default=[], metavar="A+B", help="candidates read on the test split"
    )
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument(
        "--corruptions", choices=["generic", "official"], default="generic",
        help="test corruptions of --final: the generic set or RetinaMNIST's official one",
    )  # fmt: skip
    parser.add_argument(
        "--robust-families", nargs="*", default=None, metavar="FAMILY",
        help="select on validation under these official families (e.g. all 8) as well",
    )  # fmt: skip
    parser.add_argument("--weight-steps", type=int, default=2, help="weights 1..N per member")
    parser.add_argument(
        "--json", type=Path, default=HERE / "results" / "classify_retinamnist_ensemble.json"
    )
    return parser


def main() -> None:
    args = _parser().parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    torch.set_num_threads(args.threads)
    if args.feature_cache:  # tinyvit members loaded back read their features from here
        os.environ[CACHE_ENV] = args.feature_cache
    common = {
        "time_budget_s": args.budget,
        "max_epochs": args.epochs,
        "threads": args.threads,
        "seed": args.seed,
        "progress": False,
        "feature_cache": args.feature_cache,
    }
    members = train_members(args.members, args.out, common, args.retrain)
    if args.train_only:
        return
    old = json.loads(args.json.read_text()) if args.json.is_file() else {}
    finals = {r["candidate"]: r for r in old.get("final", [])}
    dataset = OFFICIAL if args.corruptions == "official" else None
    for cand in args.final:
        finals[cand] = final(args.out, cand, args.severity, dataset)
    info = {"epochs": args.epochs, "threads": args.threads, "seed": args.seed}
    info.update(members=members, selection=select(args.out, list(members)))
    if args.robust_families is not None:
        fams = args.robust_families or list(corruption_names(OFFICIAL))
        info["robust_selection"] = select_robust(
            args.out, list(members), fams, args.severity, args.weight_steps
        )
        info["robust_families"] = fams
        for r in info["robust_selection"][:15]:
            print(f"{r['candidate']:70s} val AUC {r['val_auc']:.4f} drop {r['val_drop']:.4f}")
    info[f"val_auc_drop_s{args.severity}"] = val_drops(args.out, list(members), args.severity)
    info["final"] = list(finals.values())
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(info, indent=1, default=float))
    for r in info["selection"][:12]:
        print(f"{r['candidate']:60s} val AUC {r['val_auc']:.3f} ACC argmax {r['argmax']:.3f} "
              f"round {r['round']:.3f} thr-cv {r['thresholds_cv']:.3f}")  # fmt: skip
    for r in info["final"]:
        print(f"{r['candidate']:60s} test AUC {r['auc']:.3f} ACC {r['acc']:.3f} "
              f"drop s{args.severity} {r['auc_drop']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
