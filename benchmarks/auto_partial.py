"""``medseg auto run`` with partial labels (``partial_labels`` in ``dataset.json``, marginal
loss): full labels vs partial labels declared vs the same partial labels not declared (the
unannotated classes read as background), at the same fixed iteration count, per-class Dice on
held-out cases with full labels.

Steps (all through the CLI, one torch thread):

1. ``medseg auto convert`` JSRT/SCR chest X-rays (the only 2D set of ``../shared/data`` with
   several foreground classes in every case: right/left lung, heart, right/left clavicle; 10
   cases), images and labels shrunk ``--downsample`` times per axis (default 4: 1024^2 ->
   256^2; at full size the planned 128^2 patch sees too little of the chest to tell the
   classes apart); :data:`TEST` (4 cases) move to ``imagesTs``/``labelsTs``, the other 6
   train;
2. a copy whose training labels keep only one group of classes per case, by :data:`RULE`
   (the removed classes set to 0), once with ``partial_labels`` declared in ``dataset.json``
   and once without (the naive way);
3. one plan (``medseg auto plan`` on the full-label set) copied into every model folder, so
   all arms train the same network, patch and batch;
4. per arm: ``medseg auto run DATA --iterations N --fold all --threads 1``, then
   ``medseg auto predict`` on the test images, scored per class by
   ``medseg.metrics.evaluate_paths`` against the full test labels.

    nice -n 10 python benchmarks/auto_partial.py --shared ../shared/data \
        --out /tmp/auto_partial --iterations 1200

A finished arm (``OUT/<arm>/result.json``) is not run again. Results: ``OUT/results.json``
(and ``--results`` for the repository copy): the rule, the cases of each group, per arm the
per-class and mean test Dice.
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

SRC = "jsrt_scr_cxr"
TEST = ["JPCLN120", "JPCLN150", "JPCNN060", "JPCNN070"]
#: Label values of the two class groups: lungs, and heart + clavicles.
GROUPS = {"A": (1, 2), "B": (3, 4, 5)}
RULE = (
    "training cases permuted by default_rng(seed); the first half keep only group A "
    "(labels 1, 2: lungs), the rest only group B (labels 3, 4, 5: heart, clavicles); "
    "the labels of the other group are set to 0 (background)"
)
#: arm -> (data folder name, description).
ARMS = {
    "full": ("full", "full labels"),
    "partial_declared": ("partial_declared", "partial labels, declared (marginal loss)"),
    "partial_naive": ("partial_naive", "partial labels, not declared (missing = background)"),
}


def block_reduce(array: np.ndarray, factor: int, label: bool) -> np.ndarray:
    """``array`` (2D, ``(H, W)`` divisible by ``factor``) shrunk by ``factor`` per axis: the
    block mean (rounded, same dtype) for an image, the most frequent value (ties -> the
    lowest) for a label map."""
    h, w = array.shape
    blocks = array.reshape(h // factor, factor, w // factor, factor).swapaxes(1, 2)
    blocks = blocks.reshape(h // factor, w // factor, factor * factor)
    if not label:
        return np.rint(blocks.mean(axis=-1)).astype(array.dtype)
    values = np.unique(array)
    counts = np.stack([(blocks == v).sum(axis=-1) for v in values])
    return values[np.argmax(counts, axis=0)].astype(array.dtype)


def downsample(raw: Path, factor: int) -> None:
    """Shrink every image and label of ``raw`` in place by :func:`block_reduce`."""
    from medseg.io import load, save

    for folder, label in (("imagesTr", False), ("labelsTr", True)):
        for path in sorted((raw / folder).iterdir()):
            img = load(path)
            save(img.with_array(block_reduce(img.array, factor, label)), path)


def prepare_full(shared: Path, out: Path, factor: int) -> Path:
    """nnU-Net raw folder of JSRT/SCR (shrunk ``factor`` x when > 1) with the cases of
    :data:`TEST` in ``imagesTs``/``labelsTs``."""
    shrink = (lambda raw: downsample(raw, factor)) if factor > 1 else None
    return convert_with_test(shared / SRC, TEST, out / "raw" / "full", out, transform=shrink)


def assign_groups(train: list[str], seed: int) -> dict[str, str]:
    """Case id -> kept group (``"A"``/``"B"``) by :data:`RULE`."""
    order = [str(c) for c in np.random.default_rng(seed).permutation(sorted(train))]
    half = len(order) // 2
    return {c: ("A" if i < half else "B") for i, c in enumerate(order)}


def prepare_partial(full: Path, groups: dict[str, str]) -> tuple[Path, Path]:
    """Copies of ``full`` with the training labels reduced to their group's classes: one
    declaring ``partial_labels`` in ``dataset.json``, one not; returns both folders."""
    from medseg.io import load, save

    meta = json.loads((full / "dataset.json").read_text())
    ending = meta["file_ending"]
    names = {int(v): k for k, v in meta["labels"].items()}
    declared = full.parent / "partial_declared"
    naive = full.parent / "partial_naive"
    if not (naive / "dataset.json").is_file():
        tmp = naive.with_name(naive.name + "_tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(full, tmp)
        for case, group in groups.items():
            path = tmp / "labelsTr" / f"{case}{ending}"
            label = load(path)
            keep = np.isin(label.array, GROUPS[group])
            save(label.with_array(np.where(keep, label.array, 0).astype(label.array.dtype)), path)
        tmp.rename(naive)
    if not (declared / "dataset.json").is_file():
        tmp = declared.with_name(declared.name + "_tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(naive, tmp)
        meta["partial_labels"] = {c: [names[v] for v in GROUPS[g]] for c, g in groups.items()}
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
        tmp.rename(declared)
    return declared, naive


def score(pred: Path, labels: Path, names: dict[int, str]) -> dict:
    """Per-class Dice (mean over the test cases), per case and class, and the class mean."""
    from medseg.metrics.evaluate import EvaluationConfig, evaluate_paths

    res = evaluate_paths(pred, labels, EvaluationConfig(labels=tuple(sorted(names))))
    per_case: dict = {}
    for r in res.rows:
        per_case.setdefault(r["case"], {})[names[int(r["label"])]] = round(float(r["dice"]), 4)
    per_class = {n: float(np.nanmean([per_case[c][n] for c in per_case])) for n in names.values()}
    return {"mean_dice": float(np.mean(list(per_class.values()))), "per_class": per_class,
            "per_case": per_case}  # fmt: skip


def run_arm(arm: str, data: Path, plan_dir: Path, work: Path, iterations: int) -> dict:
    """Train and evaluate one arm in ``work`` (reused when its result exists)."""
    done = work / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    model = fresh_model_dir(work, plan_dir, ("plans.json", "fingerprint.json"))
    shutil.copy(data / "dataset.json", model / "dataset.json")
    train_s = run([*MEDSEG, "auto", "run", str(data), "--out", str(model), "--iterations",
                   str(iterations), "--fold", "all", "--max-val-cases", "1", "--threads", "1"],
                  work / "run.log")  # fmt: skip
    report = json.loads((model / "report" / "report.json").read_text())
    pred = predict_test(model, data, work)
    meta = json.loads((data / "dataset.json").read_text())
    names = {int(v): k for k, v in meta["labels"].items() if int(v) != 0}
    result = {
        "arm": arm,
        "description": ARMS[arm][1],
        "partial_labels_declared": "partial_labels" in meta,
        "run_wall_s": round(train_s, 1),
        "iterations": report["train"]["iterations"],
        "test": score(pred, data / "labelsTs", names),
    }
    done.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"),
                    help="the shared data folder")  # fmt: skip
    ap.add_argument("--out", type=Path, default=Path("/tmp/auto_partial"), help="work folder")
    ap.add_argument("--iterations", type=int, default=1200, help="training iterations per arm")
    ap.add_argument("--seed", type=int, default=0, help="seed of the group assignment")
    ap.add_argument("--downsample", type=int, default=4,
                    help="shrink the 1024^2 images and labels by this factor per axis (block "
                    "mean / block majority) before training and scoring")  # fmt: skip
    ap.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS),
                    help="arms to run, in order")  # fmt: skip
    ap.add_argument("--results", type=Path, help="also write the results JSON here")
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    full = prepare_full(args.shared, out, args.downsample)
    ending = json.loads((full / "dataset.json").read_text())["file_ending"]
    train = sorted(p.name.removesuffix(ending) for p in (full / "labelsTr").iterdir())
    groups = assign_groups(train, args.seed)
    declared, naive = prepare_partial(full, groups)
    data = {"full": full, "partial_declared": declared, "partial_naive": naive}
    plan_dir = out / "plan"
    if not (plan_dir / "plans.json").is_file():
        run([*MEDSEG, "auto", "plan", str(full), "--out", str(plan_dir), "--time-budget",
             "3m", "--threads", "1"], out / "plan.log")  # fmt: skip
    plan = json.loads((plan_dir / "plans.json").read_text())
    results: dict = {
        "dataset": SRC, "train": train, "test": TEST, "iterations": args.iterations,
        "seed": args.seed, "downsample": args.downsample, "rule": RULE,
        "groups": {k: list(v) for k, v in GROUPS.items()}, "kept_group": groups,
        "plan": {k: plan.get(k) for k in ("configuration", "patch_size", "batch_size", "filters")},
        "arms": {},
    }  # fmt: skip
    for arm in args.arms:
        row = run_arm(arm, data[arm], plan_dir, out / arm, args.iterations)
        results["arms"][arm] = row
        cls = "  ".join(f"{k} {v:.3f}" for k, v in row["test"]["per_class"].items())
        print(f"{arm:17s} mean {row['test']['mean_dice']:.4f}  {cls}  "
              f"({row['run_wall_s']:.0f} s)", flush=True)  # fmt: skip
        write_results(results, out, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
