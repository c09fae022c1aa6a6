"""MedMNIST classification benchmark: the chosen model vs the ResNet-18 baseline, one run.

For each data set: train the models with the same time budget (validation selection), read
the test split once, and evaluate it clean and under the MedMNIST-C corruptions at one
severity. Writes ``benchmarks/results/classify_medmnist.json`` and prints a Markdown table.

    nice -n 10 python benchmarks/classify_medmnist.py --budget 300 --threads 1

Rows: ``chosen`` (the set's tuned model), ``baseline`` (MedMNIST ResNet-18 recipe) and
``tinyvit`` (a head on frozen LiteMedSAM TinyViT features; the images are encoded once into
``--feature-cache``, so the first run spends ~0.65 s per image and image plane on encoding,
reported as ``encode_s_per_plane`` and ``features_s``, before the head search):

    python benchmarks/classify_medmnist.py --rows tinyvit --feature-cache /work/cache/classify \
        --json benchmarks/results/classify_tinyvit.json

Variants: ``chosen-ordinal`` / ``chosen-sord`` / ``tinyvit-ordinal`` / ``tinyvit-sord`` train
with the ordinal losses (:mod:`medseg.classify.losses`), ``tinyvit-aug`` adds one augmented
copy of the train split (default :class:`AugmentConfig`: flips, affine, a MedMNIST-C
corruption with p 0.5) to the head's data. ``best_by_val`` in the JSON names the row with
the best validation AUC (the test split plays no part in it). ``--no-corrupt`` skips the
corrupted test split; ``--epochs N`` with a generous ``--budget`` makes the CNN rows
independent of the machine's load (the schedule follows the step count).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from medseg.classify import Dataset, evaluate, read_dataset, train
from medseg.classify.augment import AugmentConfig
from medseg.classify.train import TrainOptions, baseline_options

__all__ = ["main"]

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "medmnist"
SETS = {
    "retinamnist": TrainOptions(model="efficientnet-lite0"),
    "adrenalmnist3d": TrainOptions(
        model="cnn3d",
        batch_size=16,
        augment=AugmentConfig(flip_axes=(0, 1, 2), rotate_deg=10.0, corrupt_p=0.3),
    ),
}
# A head on frozen LiteMedSAM TinyViT features; 3D: the middle slice of each axis.
TINYVIT = {
    "retinamnist": TrainOptions(model="tinyvit"),
    "adrenalmnist3d": TrainOptions(model="tinyvit", feature_slices=1),
}
ROWS = (
    "chosen",
    "baseline",
    "chosen-ordinal",
    "chosen-sord",
    "tinyvit",
    "tinyvit-ordinal",
    "tinyvit-sord",
    "tinyvit-aug",
)


def _encode_cost(ds: Dataset, opts: TrainOptions) -> dict:
    """Seconds per freshly encoded plane (8 uncached planes) and for the train+val features
    of this run (near 0 when the cache is warm)."""
    from medseg.classify.feature_head import default_cache, default_encoder
    from medseg.classify.features import extract_features

    enc = default_encoder()
    extract_features(ds.images["val"][:1], enc, None, opts.feature_slices, progress=False)
    planes = ds.images["val"][:8] if ds.spatial_dims == 2 else ds.images["val"][:8, :, 0]
    t0 = time.monotonic()
    extract_features(planes, enc, None, progress=False)
    per_plane = (time.monotonic() - t0) / len(planes)
    t0 = time.monotonic()
    cache = default_cache(opts.feature_cache)
    for split in ("train", "val"):
        extract_features(ds.images[split], enc, cache, opts.feature_slices, progress=False)
    return {
        "encode_s_per_plane": round(per_plane, 3),
        "features_s": round(time.monotonic() - t0, 1),
    }


def _options(name: str, label: str, common: dict, cache: str | None) -> TrainOptions:
    """TrainOptions of row ``label`` on set ``name`` (``common``: budget, threads, seed)."""
    base, _, variant = label.partition("-")
    if base == "baseline":
        return baseline_options(**common)
    opts = SETS[name] if base == "chosen" else TINYVIT[name]
    extra: dict = {"feature_cache": cache} if base == "tinyvit" else {}
    if variant in ("ordinal", "sord"):
        extra["loss"] = variant
    elif variant == "aug":
        extra.update(feature_augment_copies=1, augment=AugmentConfig())
    return TrainOptions(**{**opts.__dict__, **common, **extra})


def _run(
    name: str, label: str, opts: TrainOptions, out: Path, severity: int, encode_cost: bool
) -> dict:
    ds = read_dataset(DATA / f"{name}.npz")
    extra = _encode_cost(ds, opts) if encode_cost else {}
    result = train(ds, out / f"{name}_{label}", opts, evaluate_test=False)
    t0 = time.monotonic()
    sev = (severity,) if severity else ()
    rep = evaluate(result.classifier, ds, "test", corrupt=bool(sev), n_bootstrap=1000,
                   severities=sev)  # fmt: skip
    corr = {k: v[str(severity)] for k, v in rep.get("corruptions", {}).items()}
    drop = rep["auc"] - float(np.mean([c["auc"] for c in corr.values()])) if corr else None
    return {
        "set": name,
        "model": label,
        "network": result.classifier.config.model,
        "loss": opts.loss,
        "seed": opts.seed,
        "train_s": round(result.elapsed_s, 1),
        "eval_s": round(time.monotonic() - t0, 1),
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "val": result.val,
        "auc": rep["auc"],
        "acc": rep["acc"],
        "auc_ci95": rep["auc_ci95"],
        "acc_ci95": rep["acc_ci95"],
        "balanced_acc": rep["balanced_acc"],
        "ece": rep["ece"],
        "corrupted": corr,
        "auc_drop": drop,
        **extra,
    }


def _ci(r: dict, key: str) -> str:
    lo, hi = r[f"{key}_ci95"]
    return f"{r[key]:.3f} ({lo:.3f}-{hi:.3f})"


def _table(rows: list[dict], severity: int) -> str:
    head = "| set | model | test AUC (95 % CI) | test ACC (95 % CI) | bal. ACC | ECE | train s "
    lines = [
        head + f"| epochs | mean AUC drop s{severity} |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [f"{r['set']}", f"{r['model']} ({r['network']})", _ci(r, "auc"), _ci(r, "acc")]
        cells += [f"{r['balanced_acc']:.3f}", f"{r['ece']:.3f}", f"{r['train_s']:.0f}"]
        drop = "-" if r["auc_drop"] is None else f"{r['auc_drop']:.3f}"
        cells += [str(r["epochs"]), drop]
        lines.append("| " + " | ".join(cells) + " |")
    rows = [r for r in rows if r["corrupted"]]
    if not rows:
        return "\n".join(lines)
    names = list(rows[0]["corrupted"])
    lines += ["", f"Corrupted test split, severity {severity} (AUC / ACC):", ""]
    lines.append("| set | model | clean | " + " | ".join(names) + " |")
    lines.append("|---|---|---|" + "---|" * len(names))
    for r in rows:
        cells = " | ".join(
            f"{r['corrupted'][n]['auc']:.3f} / {r['corrupted'][n]['acc']:.3f}" for n in names
        )
        lines.append(f"| {r['set']} | {r['model']} | {r['auc']:.3f} / {r['acc']:.3f} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=300.0, help="training seconds per model")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--severity", type=int, default=3, help="MedMNIST-C severity of the table")
    parser.add_argument("--no-corrupt", action="store_true", help="clean test split only")
    parser.add_argument("--seed", type=int, default=0, help="seed of every row")
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="cap epochs (tinyvit: heads); with a generous --budget the learning-rate "
        "schedule then follows the step count, not the clock (load-independent)",
    )
    parser.add_argument("--sets", nargs="+", default=list(SETS), help="data sets to run")
    parser.add_argument(
        "--rows", nargs="+", default=list(ROWS), choices=ROWS, help="models to run per set"
    )
    parser.add_argument(
        "--feature-cache", default=None, help="tinyvit feature cache (default ~/.cache/medseg)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("/tmp/medseg_classify_bench"), help="model folders"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=HERE / "results" / "classify_medmnist.json",
        help="results file",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    torch.set_num_threads(args.threads)
    rows: list[dict] = []
    severity = 0 if args.no_corrupt else args.severity
    common = {"time_budget_s": args.budget, "threads": args.threads, "progress": False}
    common["seed"] = args.seed
    if args.epochs:
        common["max_epochs"] = args.epochs
    for name in args.sets:
        encoded = False
        for label in args.rows:
            opts = _options(name, label, common, args.feature_cache)
            first = opts.model == "tinyvit" and not encoded
            encoded = encoded or first
            rows.append(_run(name, label, opts, args.out, severity, first))
            best = {
                s: max((r for r in rows if r["set"] == s),
                       key=lambda r: (r["val"]["auc"], r["val"]["acc"]))["model"]
                for s in {r["set"] for r in rows}
            }  # fmt: skip
            args.json.parent.mkdir(parents=True, exist_ok=True)
            info = {"budget_s": args.budget, "threads": args.threads, "seed": args.seed}
            info["max_epochs"] = args.epochs
            args.json.write_text(json.dumps({**info, "best_by_val": best, "rows": rows}, indent=1))
    print(_table(rows, args.severity))


if __name__ == "__main__":
    main()
