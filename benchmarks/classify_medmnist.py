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
ROWS = ("chosen", "baseline", "tinyvit")


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


def _run(name: str, label: str, opts: TrainOptions, out: Path, severity: int) -> dict:
    ds = read_dataset(DATA / f"{name}.npz")
    extra = _encode_cost(ds, opts) if opts.model == "tinyvit" else {}
    result = train(ds, out / f"{name}_{label}", opts, evaluate_test=False)
    t0 = time.monotonic()
    rep = evaluate(
        result.classifier, ds, "test", corrupt=True, n_bootstrap=1000, severities=(severity,)
    )
    corr = {k: v[str(severity)] for k, v in rep["corruptions"].items()}
    return {
        "set": name,
        "model": label,
        "network": result.classifier.config.model,
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
        "auc_drop": rep["auc"] - float(np.mean([c["auc"] for c in corr.values()])),
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
        cells += [str(r["epochs"]), f"{r['auc_drop']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
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
    rows = []
    for name in args.sets:
        common = {"time_budget_s": args.budget, "threads": args.threads, "progress": False}
        options = {
            "chosen": TrainOptions(**{**SETS[name].__dict__, **common}),
            "baseline": baseline_options(**common),
            "tinyvit": TrainOptions(**{**TINYVIT[name].__dict__, **common}),
        }
        for label in args.rows:
            if label == "tinyvit":
                options[label] = TrainOptions(
                    **{**options[label].__dict__, "feature_cache": args.feature_cache}
                )
            rows.append(_run(name, label, options[label], args.out, args.severity))
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"budget_s": args.budget, "threads": args.threads, "rows": rows}, indent=1)
        )
    print(_table(rows, args.severity))


if __name__ == "__main__":
    main()
