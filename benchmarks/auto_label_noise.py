"""``medseg auto run --label-noise`` on corrupted training labels: clean vs noisy + plain vs
noisy + robust, at the same fixed iteration count, Dice on held-out cases with clean labels.

Steps (all through the CLI, one torch thread):

1. ``medseg auto convert`` ISBI 2012 EM; slices 24-29 (one block) move to
   ``imagesTs``/``labelsTs`` (test), slices 18-23 are the validation cases (the method is
   chosen on them), slices 00-17 train (``splits.json`` written before training);
2. per ``--fractions`` setting, a copy of the dataset whose training labels (slices 00-17
   only; validation and test labels stay clean) are corrupted by :func:`corrupt` for a
   seeded fraction of the cases;
3. one plan (``medseg auto plan`` on the clean set) copied into every model folder, so all runs
   train the same network, patch and batch;
4. per mode: ``medseg auto run DATA --iterations N --fold 0 --threads 1 [--label-noise M]``
   (validation Dice from its report, post-processing chosen on validation), then
   ``medseg auto predict`` on the test images, scored by ``medseg.metrics.evaluate_paths``.

    nice -n 10 python benchmarks/auto_label_noise.py --shared ../shared/data \
        --out /tmp/auto_label_noise --iterations 500 --fractions 0.5 1.0

A finished mode (``OUT/clean/result.json``, ``OUT/f<fraction>/<mode>/result.json``) is not
run again. Results: ``OUT/results.json``
(and ``--results`` for the repository copy): the noise rule and its parameters, and per
setting the Dice of the corrupted against the clean training labels, per mode the
validation and test Dice, the candidate best on validation and the share of the
clean-vs-plain gap each candidate closes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from auto_common import (
    MEDSEG,
    convert_with_test,
    fresh_model_dir,
    predict_test,
    run,
    write_results,
)

SRC = "isbi2012_em"
TRAIN = [f"train_{i:02d}" for i in range(0, 18)]
VAL = [f"train_{i:02d}" for i in range(18, 24)]
TEST = [f"train_{i:02d}" for i in range(24, 30)]
#: The corruption of one label map (membrane = 1, cells = connected components of 0).
RULE = (
    "cells = 4-connected components of the background (cell interiors); per cell, with "
    "probability p_drop its wall is dropped (membrane within drop_px of the cell -> "
    "background), otherwise its boundary moves by r px, r uniform in radii (r > 0: the cell "
    "grows into the membrane, r < 0: the membrane grows into the cell); applied to a seeded "
    "fraction of the training cases, rng = default_rng([seed, case index])"
)
PARAMS = {"p_drop": 0.15, "drop_px": 4.0, "radii": [-2, -1, 1, 2]}
#: mode -> extra options of ``medseg auto run`` and whether it trains on the noisy labels.
MODES = {
    "clean": ([], False),
    "plain": ([], True),
    "gce": (["--label-noise", "gce"], True),
    "correct": (["--label-noise", "correct"], True),
    "band": (["--label-noise", "band"], True),
}
#: The robust candidates, one of which ``--label-noise robust`` names (the best on VAL).
CANDIDATES = ("gce", "correct", "band")


def corrupt(label: np.ndarray, rng: np.random.Generator, params: dict = PARAMS) -> np.ndarray:
    """``label`` (2D uint8, 1 = membrane) corrupted by :data:`RULE`; same shape and dtype."""
    from scipy import ndimage as ndi

    membrane = label == 1
    cells, n = ndi.label(~membrane)
    drop = rng.random(n) < params["p_drop"]
    radius = rng.choice(np.asarray(params["radii"]), size=n)
    out = membrane.copy()
    for r in sorted({int(v) for v in radius[~drop]}):
        chosen = np.flatnonzero((radius == r) & ~drop) + 1
        mask = np.isin(cells, chosen)
        if r > 0:  # the cells grow: membrane within r px of them becomes background
            out &= ~(ndi.distance_transform_edt(~mask) <= r)
        else:  # the membrane grows into the cells by |r| px
            out |= mask & (ndi.distance_transform_edt(~membrane) <= -r)
    if drop.any():
        mask = np.isin(cells, np.flatnonzero(drop) + 1)
        out &= ~(ndi.distance_transform_edt(~mask) <= params["drop_px"])
    return out.astype(label.dtype)


def prepare_clean(shared: Path, out: Path) -> Path:
    """nnU-Net raw folder of ISBI with the test cases in ``imagesTs``/``labelsTs``."""
    return convert_with_test(shared / SRC, TEST, out / "raw" / "clean", out)


def prepare_noisy(clean: Path, fraction: float, seed: int) -> tuple[Path, dict]:
    """Copy of ``clean`` with the labels of a seeded ``fraction`` of :data:`TRAIN` corrupted;
    returns the folder and the record (corrupted cases, Dice of noisy vs clean labels)."""
    from medseg.io import load, save

    noisy = clean.parent / f"noisy_f{fraction:g}_s{seed}"
    chosen = sorted(
        np.random.default_rng(seed).choice(TRAIN, round(fraction * len(TRAIN)), replace=False)
    )
    ending = json.loads((clean / "dataset.json").read_text())["file_ending"]
    if not (noisy / "dataset.json").is_file():
        tmp = noisy.with_name(noisy.name + "_tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(clean, tmp)
        for case in chosen:
            path = tmp / "labelsTr" / f"{case}{ending}"
            label = load(path)
            rng = np.random.default_rng([seed, TRAIN.index(case)])
            save(label.with_array(corrupt(label.array, rng)), path)
        tmp.rename(noisy)
    dice = {}
    for case in chosen:
        a = load(clean / "labelsTr" / f"{case}{ending}").array == 1
        b = load(noisy / "labelsTr" / f"{case}{ending}").array == 1
        dice[case] = round(float(2 * (a & b).sum() / (a.sum() + b.sum())), 4)
    return noisy, {"corrupted": chosen, "label_dice_vs_clean": dice,
                   "mean_label_dice": float(np.mean(list(dice.values())))}  # fmt: skip


def score(pred: Path, labels: Path) -> dict:
    """Per-case Dice of label 1 and their mean."""
    from medseg.metrics.evaluate import EvaluationConfig, evaluate_paths

    res = evaluate_paths(pred, labels, EvaluationConfig(labels=(1,)))
    per_case = {r["case"]: round(float(r["dice"]), 4) for r in res.rows}
    return {"mean_dice": float(np.mean(list(per_case.values()))), "per_case": per_case}


def noise_config() -> dict:
    """The parameters of :class:`medseg.training.noise.NoiseConfig` the runs use."""
    from dataclasses import asdict

    from medseg.training.noise import NoiseConfig

    return asdict(NoiseConfig())


def run_mode(mode: str, data: Path, plan_dir: Path, work: Path, iterations: int) -> dict:
    """Train and evaluate one mode in ``work`` (reused when its result exists)."""
    done = work / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    model = fresh_model_dir(work, plan_dir, ("plans.json", "fingerprint.json", "dataset.json"))
    (model / "splits.json").write_text(json.dumps([{"train": TRAIN, "val": VAL}]) + "\n")
    extra = MODES[mode][0]
    train_s = run([*MEDSEG, "auto", "run", str(data), "--out", str(model), "--iterations",
                   str(iterations), "--fold", "0", "--threads", "1", *extra],
                  work / "run.log")  # fmt: skip
    report = json.loads((model / "report" / "report.json").read_text())
    val = {r["case"]: round(float(r["dice"]), 4) for r in report["cases"] if r["label"] == 1}
    pred = predict_test(model, data, work)
    result = {
        "mode": mode,
        "options": extra,
        "noisy_labels": MODES[mode][1],
        "noise_config": noise_config() if extra else None,
        "run_wall_s": round(train_s, 1),
        "iterations": report["train"]["iterations"],
        "val": {"mean_dice": float(np.mean(list(val.values()))), "per_case": val},
        "test": score(pred, data / "labelsTs"),
    }
    done.write_text(json.dumps(result, indent=2) + "\n")
    return result


def summarise(modes: dict) -> dict:
    """The candidate with the best validation Dice, and for it and every candidate the
    share of the clean-vs-plain test gap it closes (``(robust - plain) / (clean - plain)``)."""
    from medseg.training.noise import ROBUST_METHOD

    out: dict = {"robust_method": ROBUST_METHOD}
    ran = [c for c in CANDIDATES if c in modes]
    if ran:
        out["chosen_on_val"] = max(ran, key=lambda c: modes[c]["val"]["mean_dice"])
    if "clean" in modes and "plain" in modes:
        for split in ("val", "test"):
            c, p = (modes[m][split]["mean_dice"] for m in ("clean", "plain"))
            out[f"gap_{split}"] = c - p
            out[f"gap_closed_{split}"] = {
                m: (modes[m][split]["mean_dice"] - p) / (c - p) if c != p else None for m in ran
            }
    return out


def earlier_tries(folder: Path) -> dict:
    """Results kept in ``folder/<mode>_<tag>/`` (runs of a mode with earlier parameters,
    moved aside by hand before rerunning it), by folder name."""
    found = sorted(folder.glob("*_*/result.json")) if folder.is_dir() else []
    return {f.parent.name: json.loads(f.read_text()) for f in found}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"),
                    help="the shared data folder")  # fmt: skip
    ap.add_argument("--out", type=Path, default=Path("/tmp/auto_label_noise"), help="work folder")
    ap.add_argument("--iterations", type=int, default=500, help="training iterations per mode")
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.5, 1.0],
                    help="fractions of the training cases whose labels are corrupted, one "
                    "setting each (the clean run is shared)")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0, help="seed of the corruption")
    ap.add_argument("--modes", nargs="+", choices=sorted(MODES), default=list(MODES),
                    help="modes to run, in order")  # fmt: skip
    ap.add_argument("--results", type=Path, help="also write the results JSON here")
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    clean = prepare_clean(args.shared, out)
    plan_dir = out / "plan"
    if not (plan_dir / "plans.json").is_file():
        run([*MEDSEG, "auto", "plan", str(clean), "--out", str(plan_dir), "--time-budget",
             "3m", "--threads", "1"], out / "plan.log")  # fmt: skip
    plan = json.loads((plan_dir / "plans.json").read_text())
    results: dict = {
        "dataset": SRC, "train": TRAIN, "val": VAL, "test": TEST,
        "iterations": args.iterations, "seed": args.seed, "rule": RULE, "params": PARAMS,
        "plan": {k: plan.get(k) for k in ("configuration", "patch_size", "batch_size", "filters")},
        "settings": {},
    }  # fmt: skip
    for fraction in args.fractions:
        noisy, record = prepare_noisy(clean, fraction, args.seed)
        setting: dict = {"fraction": fraction, "noise": record, "modes": {}}
        results["settings"][f"{fraction:g}"] = setting
        for mode in args.modes:
            noisy_mode = MODES[mode][1]
            work = out / f"f{fraction:g}" / mode if noisy_mode else out / mode
            row = run_mode(mode, noisy if noisy_mode else clean, plan_dir, work, args.iterations)
            setting["modes"][mode] = row
            val, test = row["val"]["mean_dice"], row["test"]["mean_dice"]
            print(f"f={fraction:g} {mode:8s} val {val:.4f}  test {test:.4f}  "
                  f"({row['run_wall_s']:.0f} s)", flush=True)  # fmt: skip
            setting.update(summarise(setting["modes"]))
            setting["earlier_tries"] = earlier_tries(out / f"f{fraction:g}")
            write_results(results, out, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
