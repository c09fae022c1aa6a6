"""MedMNIST classification benchmark: the chosen model vs the ResNet-18 baseline, one run.

For each data set: train both models with the same time budget (validation selection), read
the test split once, and evaluate it clean and under the MedMNIST-C corruptions at one
severity. Writes ``benchmarks/results/classify_medmnist.json`` and prints a Markdown table.

    nice -n 10 python benchmarks/classify_medmnist.py --budget 300 --threads 1
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from medseg.classify import evaluate, read_dataset, train
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


def _run(name: str, label: str, opts: TrainOptions, out: Path, severity: int) -> dict:
    ds = read_dataset(DATA / f"{name}.npz")
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
        chosen = TrainOptions(**{**SETS[name].__dict__, **common})
        rows.append(_run(name, "chosen", chosen, args.out, args.severity))
        rows.append(_run(name, "baseline", baseline_options(**common), args.out, args.severity))
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"budget_s": args.budget, "threads": args.threads, "rows": rows}, indent=1)
        )
    print(_table(rows, args.severity))


if __name__ == "__main__":
    main()
