"""Evaluate a classifier on a split, clean and under MedMNIST-C corruptions.

``evaluate`` returns a JSON-ready report with top-level ``auc`` and ``acc`` (MedMNIST
definitions) beside balanced accuracy, ECE, bootstrap intervals, per-class table and confusion
matrix; with ``corrupt=True`` it adds ``corruptions``: AUC/ACC per family and severity.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from medseg.classify.corrupt import SEVERITIES, corrupt_batch, corruption_names
from medseg.classify.corrupt_sets import official_set_name
from medseg.classify.data import SPLITS, Dataset
from medseg.classify.metrics import accuracy, auc, calibration_curve, classification_report
from medseg.classify.model import Classifier
from medseg.errors import InputError

__all__ = ["evaluate", "evaluate_corruptions", "corruption_table", "save_plots"]

log = logging.getLogger(__name__)


def evaluate_corruptions(
    clf: Classifier,
    images: np.ndarray,
    labels: np.ndarray,
    task: str,
    severities: tuple[int, ...] = SEVERITIES,
    names: tuple[str, ...] | None = None,
    seed: int = 0,
    dataset: str | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """``{corruption: {severity: {"auc", "acc"}}}`` on corrupted copies of ``images``;
    ``dataset``: that MedMNIST set's official MedMNIST-C corruptions (default: generic set)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in names or corruption_names(dataset):
        out[name] = {}
        for s in severities:
            scores = clf.predict_proba(corrupt_batch(images, name, s, seed, dataset))
            out[name][str(s)] = {
                "auc": auc(labels, scores, task),
                "acc": accuracy(labels, scores, task),
            }
    return out


def corruption_table(report: dict[str, Any], severity: int = 3) -> str:
    """Markdown table: clean AUC/ACC and each corruption at ``severity``, plus the mean drop."""
    rows = [
        "| corruption | AUC | ACC |",
        "|---|---|---|",
        f"| clean | {report['auc']:.3f} | {report['acc']:.3f} |",
    ]
    drops = []
    for name, by_sev in report["corruptions"].items():
        m = by_sev[str(severity)]
        drops.append(report["auc"] - m["auc"])
        rows.append(f"| {name} (s{severity}) | {m['auc']:.3f} | {m['acc']:.3f} |")
    rows.append(f"| mean AUC drop | {np.mean(drops):.3f} | |")
    return "\n".join(rows)


def evaluate(
    clf: Classifier,
    data: Dataset,
    split: str = "test",
    corrupt: bool = False,
    n_bootstrap: int = 1000,
    severities: tuple[int, ...] = SEVERITIES,
    corruption_set: str | None = "auto",
) -> dict[str, Any]:
    """Report of ``clf`` on ``data.images[split]`` (see the module docstring).

    ``corruption_set``: ``"auto"`` uses the official MedMNIST-C set of a MedMNIST file named
    like ``retinamnist.npz`` and the generic set otherwise; ``None`` or ``"generic"``: the
    generic set; a dataset name (``"retinamnist"``): that official set."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; use {SPLITS}")
    if data.task != clf.config.task and {data.task, clf.config.task} != {"ordinal", "multi-class"}:
        raise InputError(
            f"{data.source}: task {data.task!r} but the model was trained for {clf.config.task!r}"
        )
    if data.spatial_dims != clf.config.spatial_dims:
        raise InputError(
            f"{data.source}: {data.spatial_dims}D images but the model {clf.config.model!r} "
            f"was trained on {clf.config.spatial_dims}D images"
        )
    n_out = len(clf.classes)
    n_data = len(data.classes)
    if n_data > n_out:
        raise InputError(f"{data.source}: {n_data} classes but the model knows {n_out}")
    images, labels = data.images[split], data.labels[split]
    scores = clf.predict_proba(images)
    report = classification_report(labels, scores, clf.config.task, clf.classes, n_bootstrap)
    report.update(split=split, source=data.source, model=clf.config.model)
    report["calibration"] = {
        k: np.asarray(v).tolist()
        for k, v in calibration_curve(labels, scores, clf.config.task).items()
    }
    if corrupt:
        cset = official_set_name(data.source) if corruption_set == "auto" else corruption_set
        cset = None if cset == "generic" else cset
        report["corruption_set"] = f"medmnist-c:{cset}" if cset else "generic"
        report["corruptions"] = evaluate_corruptions(
            clf, images, labels, clf.config.task, severities, dataset=cset
        )
        at3 = [m["3"]["auc"] for m in report["corruptions"].values() if "3" in m]
        if at3:
            report["corrupted_auc_s3"] = float(np.mean(at3))
    return report


def save_plots(report: dict[str, Any], out: str | Path) -> list[Path]:
    """Reliability diagram (``calibration.png``) and, with corruptions, AUC/ACC per corruption
    and severity (``corruptions.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    cal = report["calibration"]
    fig, ax = plt.subplots(figsize=(4, 4))
    centers = (np.asarray(cal["edges"][:-1]) + np.asarray(cal["edges"][1:])) / 2
    acc = np.asarray(cal["accuracy"], dtype=float)
    ax.bar(centers, np.nan_to_num(acc), width=1 / len(centers), edgecolor="k", alpha=0.7)
    ax.plot([0, 1], [0, 1], "r--")
    ax.set(xlabel="confidence", ylabel="accuracy", title=f"ECE {report['ece']:.3f}")
    fig.tight_layout()
    fig.savefig(out / "calibration.png", dpi=100)
    plt.close(fig)
    written.append(out / "calibration.png")
    if "corruptions" in report:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
        for name, by_sev in report["corruptions"].items():
            sev = sorted(by_sev, key=int)
            for ax, key in zip(axes, ("auc", "acc"), strict=True):
                ax.plot([int(s) for s in sev], [by_sev[s][key] for s in sev], "o-", label=name)
        for ax, key in zip(axes, ("auc", "acc"), strict=True):
            ax.axhline(report[key], color="k", ls="--", lw=1)
            ax.set(xlabel="severity", ylabel=key.upper())
        axes[1].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "corruptions.png", dpi=100)
        plt.close(fig)
        written.append(out / "corruptions.png")
    return written
