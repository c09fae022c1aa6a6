"""Training from several simulated raters (``medseg auto train --raters``, STAPLE fusion) vs
one rater vs the clean labels, same plan and fixed iteration count.

Steps (all through the CLI, one torch thread, ``--fold all``):

1. ``medseg auto convert`` the shared set; the held-out cases (ISBI 2012: the last 6
   slices) go to ``imagesTs``/``labelsTs``;
2. three raters are simulated from the clean training labels by the seeded rules in
   ``RATERS`` (recorded in the results) into ``labelsTr_<rater>/``;
3. one plan (``medseg auto plan --time-budget 3m`` on the clean set) is copied into every
   model folder, so all arms train the same network;
4. ``--iterations IT`` each: clean labels, each single rater named in ``--single``, and
   ``--raters`` (STAPLE, the default fusion; ``MODEL/raters.json`` holds the agreement);
5. ``medseg auto predict`` on the held-out cases, Dice of label 1 against the clean labels.

    python benchmarks/auto_raters.py --shared ../shared/data --out /tmp/auto_raters

Results: ``OUT/results.json`` (held-out Dice per arm and case, each rater's and the
fusion's Dice against the clean training labels, the per-case agreement of raters.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from auto_corrections import MEDSEG, prepare, run, score, subset

#: Per rater: morphology (per case, drawn with the rater's seed) and dropped pieces.
RATERS = {
    "a": {"rule": "dilate 1 px (3x3) every case; drop 15 pieces", "seed": 1},
    "b": {"rule": "erode 1 px (3x3) with probability 0.5 per case; drop 30 pieces", "seed": 2},
    "c": {"rule": "per case dilate 2 px or erode 1 px (50/50); drop 15 pieces", "seed": 3},
}
DROP_RULE = ("a piece: the disc of radius 8 px around a random foreground pixel is set to "
             "background (a missed stretch of membrane)")  # fmt: skip


def _drop(mask: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    out = mask.copy()
    ys, xs = np.nonzero(mask)
    yy, xx = np.ogrid[: mask.shape[0], : mask.shape[1]]
    for i in rng.choice(len(ys), size=min(n, len(ys)), replace=False):
        out[(yy - ys[i]) ** 2 + (xx - xs[i]) ** 2 <= 64] = 0
    return out


def corrupt(mask: np.ndarray, rater: str, case_index: int) -> np.ndarray:
    """``mask`` (2D 0/1) as rater ``rater`` draws it (``RATERS``), seeded per rater and case."""
    from scipy import ndimage

    rng = np.random.default_rng([RATERS[rater]["seed"], case_index])
    m = mask.astype(bool)
    square = np.ones((3, 3), bool)
    if rater == "a":
        m, n = ndimage.binary_dilation(m, square), 15
    elif rater == "b":
        m = ndimage.binary_erosion(m, square) if rng.random() < 0.5 else m
        n = 30
    else:
        dilate = rng.random() < 0.5
        m = ndimage.binary_dilation(m, square, 2) if dilate else ndimage.binary_erosion(m, square)
        n = 15
    return _drop(m.astype(np.uint8), n, rng)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * (a & b).sum() / s)


def write_raters(raw: Path, data: Path) -> dict:
    """``data``: ``raw``'s training images (copied) with ``labelsTr`` (clean) and
    ``labelsTr_<rater>``; returns each rater's mean Dice against the clean labels."""
    from medseg.io import load_label, save
    from medseg.io.image import LabelMap

    cases = sorted(p.name.split(".")[0] for p in (raw / "labelsTr").iterdir())
    subset(raw, cases, data)
    ending = json.loads((raw / "dataset.json").read_text())["file_ending"]
    agreement: dict[str, list[float]] = {r: [] for r in RATERS}
    for i, case in enumerate(cases):
        clean = load_label(data / "labelsTr" / f"{case}{ending}")
        for rater in RATERS:
            target = data / f"labelsTr_{rater}" / f"{case}{ending}"
            arr = corrupt(clean.array, rater, i)
            if not target.is_file():
                save(LabelMap.like(clean, arr), target)
            agreement[rater].append(dice(arr, clean.array))
    return {r: round(float(np.mean(v)), 4) for r, v in agreement.items()}


def fused_vs_clean(model: Path, data: Path) -> float:
    from medseg.io import load_label

    files = sorted((model / "fused_labels").iterdir())
    return round(float(np.mean([dice(load_label(f).array, load_label(data / "labelsTr" /
                                                                      f.name).array)
                                for f in files])), 4)  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"), help="shared data")
    ap.add_argument("--out", type=Path, default=Path("/tmp/auto_raters"), help="work folder")
    ap.add_argument("--dataset", default="isbi", choices=("isbi",))
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--plan-budget", default="3m", help="medseg auto plan --time-budget")
    ap.add_argument("--single", nargs="*", default=["a"], help="single-rater arms")
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    raw = prepare(args.dataset, args.shared, out)
    data = out / "data"
    res: dict = {"dataset": args.dataset, "iterations": args.iterations, "raters": RATERS,
                 "drop_rule": DROP_RULE, "wall_s": {}}  # fmt: skip
    if (out / "results.json").is_file():  # a rerun adds arms: keep the earlier timings
        res["wall_s"] = json.loads((out / "results.json").read_text()).get("wall_s", {})
    res["rater_dice_vs_clean"] = write_raters(raw, data)
    plan_dir = out / "plan"
    if not (plan_dir / "plans.json").is_file():
        run([*MEDSEG, "auto", "plan", str(data), "--out", str(plan_dir), "--time-budget",
             args.plan_budget, "--threads", "1"], out / "plan.log")  # fmt: skip
    arms: dict[str, tuple[Path, list[str]]] = {"clean": (data, [])}
    for rater in args.single:
        single = out / f"data_{rater}"
        if not (single / "dataset.json").is_file():
            shutil.copytree(data / "imagesTr", single / "imagesTr")
            shutil.copytree(data / f"labelsTr_{rater}", single / "labelsTr")
            shutil.copyfile(data / "dataset.json", single / "dataset.json")
        arms[f"rater_{rater}"] = (single, [])
    arms["staple"] = (data, ["--raters"])
    res["held_out_dice"] = {}
    for arm, (dataset, extra) in arms.items():
        model = out / arm
        if not (model / "fold_all" / "checkpoint_final.pt").is_file():
            model.mkdir(exist_ok=True)
            for name in ("plans.json", "dataset.json", "fingerprint.json"):
                shutil.copyfile(plan_dir / name, model / name)
            res["wall_s"][arm] = run(
                [*MEDSEG, "auto", "train", str(dataset), "--out", str(model), "--iterations",
                 str(args.iterations), "--fold", "all", "--threads", "1", *extra],
                out / f"train_{arm}.log",
            )  # fmt: skip
        pred = out / "pred" / arm
        if not pred.is_dir():
            run([*MEDSEG, "auto", "predict", str(model), str(raw / "imagesTs"), str(pred),
                 "--threads", "1"], out / f"predict_{arm}.log")  # fmt: skip
        res["held_out_dice"][arm] = score(pred, raw / "labelsTs")
        print(f"{arm:10s} mean Dice {res['held_out_dice'][arm]['mean_dice']:.4f}", flush=True)
    summary = json.loads((out / "staple" / "raters.json").read_text())
    res["staple_dice_vs_clean"] = fused_vs_clean(out / "staple", data)
    res["agreement"] = {k: summary[k] for k in ("mean_pairwise_dice", "mean_fleiss_kappa",
                                                "mean_dice_vs_fused")}  # fmt: skip
    res["agreement_per_case"] = [
        {"case": c["case"], "pairwise_dice": round(c["pairwise_dice"], 4),
         "fleiss_kappa": round(c["fleiss_kappa"], 4),
         "dice_vs_fused": {k: round(v, 4) for k, v in c["dice_vs_fused"].items()}}
        for c in summary["cases"]
    ]  # fmt: skip
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
