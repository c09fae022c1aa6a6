"""``medseg auto predict --adapt`` (test-time entropy minimisation) with and without, on the
held-out cases of one dataset and on recorded intensity shifts of them.

Steps (all through the CLI, one torch thread):

1. ``medseg auto convert`` the shared dataset; the fixed test cases move to
   ``imagesTs``/``labelsTs`` (ISBI 2012: the last 6 slices, one block);
2. ``medseg auto run DATA --fold all --time-budget B --threads 1`` on the other cases
   (skipped when ``OUT/model/report/report.json`` exists, so a finished model is reused);
3. the shifted test sets are written by the rules in ``SHIFTS`` (recorded in the results);
4. for every set: ``medseg auto predict MODEL SET PRED [--adapt]``, scored by
   ``medseg.metrics.evaluate_paths`` (Dice of label 1 per case, mean over cases).

    python benchmarks/auto_adapt.py --shared ../shared/data --out /tmp/auto_adapt --budget 3m

Results: ``OUT/results.json`` (per set: mean Dice without and with ``--adapt``, per-case
Dice, prediction wall times).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from auto_common import MEDSEG, convert_with_test, run

DATASETS = {
    "isbi": {"src": "isbi2012_em", "test": [f"train_{i:02d}" for i in range(24, 30)]},
}
#: Intensity shifts of the 8-bit test images (x in [0, 255]; noise seeded per case index).
SHIFTS = {
    "gamma2": "255 * (x / 255) ** 2.0 (darker mid-tones, lower contrast in dark regions)",
    "gamma0.5": "255 * (x / 255) ** 0.5 (brighter mid-tones)",
    "noise15": "x + N(0, 15), clipped to [0, 255], seed = case index",
    "contrast_noise": "128 + 0.5 * (x - 128) + N(0, 10), clipped, seed = case index",
}


def shift_image(x: np.ndarray, rule: str, seed: int) -> np.ndarray:
    """``x`` (uint8 array) under one of the ``SHIFTS`` rules, as uint8."""
    rng = np.random.default_rng(seed)
    f = x.astype(np.float64)
    if rule == "gamma2":
        y = 255 * (f / 255) ** 2.0
    elif rule == "gamma0.5":
        y = 255 * (f / 255) ** 0.5
    elif rule == "noise15":
        y = f + rng.normal(0, 15, f.shape)
    elif rule == "contrast_noise":
        y = 128 + 0.5 * (f - 128) + rng.normal(0, 10, f.shape)
    else:
        raise ValueError(rule)
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def prepare(name: str, shared: Path, out: Path) -> Path:
    """nnU-Net raw folder with the fixed test cases in ``imagesTs``/``labelsTs``."""
    return convert_with_test(shared / DATASETS[name]["src"], DATASETS[name]["test"],
                             out / "raw" / name, out)  # fmt: skip


def write_shifted(raw: Path, out: Path) -> dict[str, Path]:
    """One image folder per set: ``clean`` (= imagesTs) and every rule of ``SHIFTS``."""
    from medseg.io import load, save

    sets = {"clean": raw / "imagesTs"}
    files = sorted((raw / "imagesTs").iterdir())
    for rule in SHIFTS:
        folder = out / "shifted" / rule
        for i, f in enumerate(files):
            target = folder / f.name
            if not target.is_file():
                image = load(f)
                save(image.with_array(shift_image(image.array, rule, i)), target)
        sets[rule] = folder
    return sets


def score(pred: Path, raw: Path) -> dict:
    """Per-case Dice of label 1 and their mean."""
    from medseg.metrics.evaluate import EvaluationConfig, evaluate_paths

    res = evaluate_paths(pred, raw / "labelsTs", EvaluationConfig(labels=(1,)))
    per_case = {r["case"]: float(r["dice"]) for r in res.rows}
    return {"mean_dice": float(np.mean(list(per_case.values()))), "per_case": per_case}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"),
                    help="the shared data folder")  # fmt: skip
    ap.add_argument("--out", type=Path, default=Path("/tmp/auto_adapt"), help="work folder")
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="isbi", help="dataset")
    ap.add_argument("--budget", default="3m", help="medseg auto run --time-budget")
    ap.add_argument("--adapt-args", nargs="*", default=[],
                    help="extra options for the --adapt runs, e.g. --adapt-steps 20")  # fmt: skip
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    raw = prepare(args.dataset, args.shared, out)
    model = out / "model"
    results: dict = {"dataset": args.dataset, "budget": args.budget, "shifts": SHIFTS}
    if not (model / "report" / "report.json").is_file():
        results["train_s"] = run(
            [*MEDSEG, "auto", "run", str(raw), "--out", str(model), "--time-budget",
             args.budget, "--fold", "all", "--threads", "1"], out / "train.log",
        )  # fmt: skip
    results["adapt_args"] = args.adapt_args
    results["sets"] = {}
    for name, folder in write_shifted(raw, out).items():
        row = {}
        for mode, extra in (("plain", []), ("adapt", ["--adapt", *args.adapt_args])):
            pred = out / "pred" / f"{name}_{mode}"
            shutil.rmtree(pred, ignore_errors=True)
            log = out / f"predict_{name}_{mode}.log"
            wall = run([*MEDSEG, "auto", "predict", str(model), str(folder), str(pred),
                        "--threads", "1", *extra], log)  # fmt: skip
            row[mode] = {**score(pred, raw), "wall_s": round(wall, 1)}
        row["delta"] = row["adapt"]["mean_dice"] - row["plain"]["mean_dice"]
        results["sets"][name] = row
        plain, adapt = row["plain"]["mean_dice"], row["adapt"]["mean_dice"]
        delta = row["delta"]
        print(f"{name:16s} plain {plain:.4f}  adapt {adapt:.4f}  delta {delta:+.4f}", flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
