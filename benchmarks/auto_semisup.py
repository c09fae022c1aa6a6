"""Semi-supervised ``medseg auto run --unlabeled`` against supervised-only and full labels.

Steps (all through the CLI, one torch thread, fixed iteration count so that the machine's
load does not change the result):

1. ``medseg auto convert`` the shared dataset; the fixed test cases move to
   ``imagesTs``/``labelsTs`` (ISBI 2012: the last 6 slices, one block; BUSI: 3 benign and
   3 malignant, see ``DATASETS``);
2. one plan (``medseg auto plan --time-budget 3m`` on all training cases) is copied into
   every model folder, so every arm trains the same network;
3. per kept fraction (10 %, 25 %): the labelled cases are drawn with ``--seed``
   (``numpy.random.default_rng(seed).choice``, sorted; recorded in the results), the other
   training images go to an unlabelled folder (``<case>_0000.png``, no labels);
4. arms, all ``medseg auto run DATA --fold all --iterations N --threads 1``:
   ``supervised`` (kept labels only), ``semi`` (kept labels + ``--unlabeled``) and, once,
   ``full`` (every training label);
5. each model predicts the test images (``medseg auto predict --postprocess off``), scored by
   ``medseg.metrics.evaluate_paths`` (Dice of label 1 per case, mean over cases).

    nice -n 10 python benchmarks/auto_semisup.py --shared ../shared/data \\
        --out /tmp/auto_semisup --iterations 500

``--tune`` scores the dataset's ``val`` cases instead (the test cases are then left out),
for choosing the recipe; ``--recipe JSON`` runs the semi-supervised arms with other
:data:`medseg.training.semisup.RECIPE` values (``benchmarks/semisup_recipe.py``) and
``--tag`` names those arms ``<fraction>_semi<tag>``, so recipes sit side by side in one OUT.

Results: ``OUT/results.json`` (per arm: mean and per-case test Dice, wall times, the kept
cases) and the gap recovered, ``(semi - supervised) / (full - supervised)`` per fraction.
A finished arm (its predictions scored in ``OUT/results.json``) is not rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from auto_common import MEDSEG, convert_with_test, run

DATASETS = {
    "isbi": {"src": "isbi2012_em", "test": [f"train_{i:02d}" for i in range(24, 30)]},
    # BUSI breast ultrasound (24 images): the last 3 benign and last 3 malignant cases
    "busi": {
        "src": "busi_breast_us",
        "test": [f"benign_{i:03d}" for i in (24, 25, 26)]
        + [f"malignant_{i:03d}" for i in (10, 11, 12)],
        "convert": ["--binarize"],  # lesion vs background (not benign vs malignant)
    },
    # the same, shrunk 4x per axis (~131x175 px), so that the arms fit a shared 2-core CPU
    "busi4": {
        "src": "busi_breast_us",
        "test": [f"benign_{i:03d}" for i in (24, 25, 26)]
        + [f"malignant_{i:03d}" for i in (10, 11, 12)],
        "val": ["benign_022", "benign_023", "malignant_008", "malignant_009"],
        "convert": ["--binarize"],
        "downsample": 4,
    },
    # TG3K thyroid ultrasound (16 frames, 256^2): every 4th frame is a test case; ``val``
    # (used only with --tune, test cases then left out) chooses the recipe
    "tg3k": {
        "src": "tg3k_thyroid_us",
        "test": ["tg3k_0567", "tg3k_1242", "tg3k_2260", "tg3k_3294"],
        "val": ["tg3k_0183", "tg3k_1490", "tg3k_2684"],
    },
    # MSD spleen CT slices (18, 512^2 shrunk 2x to 256^2)
    "spleen": {
        "src": "msd_spleen_ct_slices",
        "test": ["10012_spleen_9", "10023_spleen_19", "10029_spleen_19", "10035_spleen_49"],
        "val": ["10004_spleen_26", "10021_spleen_3", "10030_spleen_59"],
        "downsample": 2,
    },
}


def _shrink(factor: int):
    """In-place 2D block reduction by ``factor`` of a converted folder's images (block mean)
    and labels (most frequent value), each first cropped to a multiple of ``factor`` at the
    bottom/right; None when ``factor <= 1``."""
    if factor <= 1:
        return None
    from auto_partial import block_reduce

    from medseg.io import load, save

    def shrink(raw: Path) -> None:
        for folder, label in (("imagesTr", False), ("labelsTr", True)):
            for path in sorted((raw / folder).iterdir()):
                img = load(path)
                h, w = (n - n % factor for n in img.array.shape[:2])
                save(img.with_array(block_reduce(img.array[:h, :w], factor, label)), path)

    return shrink


def _drop(raw: Path, cases: list[str]) -> None:
    """Remove the training images and labels of ``cases`` from ``raw`` (--tune: the test
    cases take no part in choosing the recipe)."""
    meta = json.loads((raw / "dataset.json").read_text())
    ending = meta["file_ending"]
    for case in cases:
        for f in (raw / "imagesTr").glob(f"{case}_[0-9][0-9][0-9][0-9]{ending}"):
            f.unlink()
        (raw / "labelsTr" / f"{case}{ending}").unlink(missing_ok=True)
    meta["numTraining"] = len(list((raw / "labelsTr").iterdir()))
    (raw / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")


def prepare(name: str, shared: Path, out: Path, tune: bool = False) -> Path:
    """nnU-Net raw folder with the fixed test cases in ``imagesTs``/``labelsTs``; with
    ``tune`` the validation cases are scored instead and the test cases are removed."""
    d = DATASETS[name]
    scored = d["val"] if tune else d["test"]
    raw = convert_with_test(shared / d["src"], scored, out / "raw" / name, out,
                            d.get("convert", []), _shrink(d.get("downsample", 1)))  # fmt: skip
    if tune:
        _drop(raw, d["test"])
    return raw


def subset(raw: Path, kept: list[str], out: Path) -> tuple[Path, Path]:
    """``(dataset with only the kept labels, folder of the other training images)``, as
    symbolic links to ``raw``'s files."""
    meta = json.loads((raw / "dataset.json").read_text())
    ending = meta["file_ending"]
    data, unl = out / "data", out / "unlabeled"
    for folder in (data / "imagesTr", data / "labelsTr", unl):
        folder.mkdir(parents=True, exist_ok=True)
    for f in sorted((raw / "imagesTr").iterdir()):
        case = f.name[: -len(ending)].rsplit("_", 1)[0]
        target = data / "imagesTr" / f.name if case in kept else unl / f.name
        if not target.exists():
            os.symlink(f.resolve(), target)
    for case in kept:
        target = data / "labelsTr" / f"{case}{ending}"
        if not target.exists():
            os.symlink((raw / "labelsTr" / f"{case}{ending}").resolve(), target)
    meta["numTraining"] = len(kept)
    (data / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    return data, unl


def score(pred: Path, raw: Path) -> dict:
    """Per-case Dice of label 1 and their mean."""
    from medseg.metrics.evaluate import EvaluationConfig, evaluate_paths

    res = evaluate_paths(pred, raw / "labelsTs", EvaluationConfig(labels=(1,)))
    per_case = {r["case"]: float(r["dice"]) for r in res.rows}
    return {"mean_dice": float(np.mean(list(per_case.values()))), "per_case": per_case}


def arm(raw: Path, data: Path, model: Path, plan: Path, args: argparse.Namespace,
        unlabeled: Path | None) -> dict:  # fmt: skip
    """Train one arm with the shared plan, predict and score the test images."""
    shutil.rmtree(model, ignore_errors=True)
    model.mkdir(parents=True)
    shutil.copyfile(plan, model / "plans.json")
    extra = ["--unlabeled", str(unlabeled), *args.semi_args] if unlabeled is not None else []
    cli = MEDSEG
    if unlabeled is not None and args.recipe:  # another semisup.RECIPE in that process
        cli = [sys.executable, str(Path(__file__).with_name("semisup_recipe.py")), args.recipe]
    train_s = run([*cli, "auto", "run", str(data), "--out", str(model), "--fold", "all",
                   "--iterations", str(args.iterations), "--seed", str(args.seed),
                   "--threads", "1", *extra], model.parent / f"{model.name}_train.log")  # fmt: skip
    pred = model / "test_pred"
    pred_s = run([*MEDSEG, "auto", "predict", str(model), str(raw / "imagesTs"), str(pred),
                  "--postprocess", "off", "--threads", "1"],
                 model.parent / f"{model.name}_predict.log")  # fmt: skip
    report = json.loads((model / "report" / "report.json").read_text())
    return {**score(pred, raw), "train_wall_s": round(train_s, 1),
            "train_s": round(report["timings"]["train_s"], 1),
            "iterations": report["train"]["iterations"], "predict_wall_s": round(pred_s, 1),
            "semi_supervised": report.get("semi_supervised")}  # fmt: skip


def gaps(results: dict) -> None:
    """Add ``gap`` (full - supervised Dice) and ``gap_recovered<tag>`` ((semi - supervised)
    / gap; None when the gap is <= 0) per fraction and semi-supervised arm, once its
    supervised arm and ``full`` are scored."""
    full = results["arms"].get("full")
    for key, frac in results["fractions"].items():
        sup = results["arms"].get(f"{key}_supervised")
        if not (full and sup):
            continue
        gap = full["mean_dice"] - sup["mean_dice"]
        frac["gap"] = gap  # <= 0: fewer labels did not lower Dice, nothing to recover
        for name, semi in results["arms"].items():
            if name.startswith(f"{key}_semi"):
                rec = (semi["mean_dice"] - sup["mean_dice"]) / gap if gap > 0 else None
                frac["gap_recovered" + name[len(f"{key}_semi") :]] = rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"),
                    help="the shared data folder")  # fmt: skip
    ap.add_argument("--out", type=Path, default=Path("/tmp/auto_semisup"), help="work folder")
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="isbi", help="dataset")
    ap.add_argument("--iterations", type=int, default=500, help="training iterations per arm")
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25],
                    help="shares of the training labels kept")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0, help="seed of the kept cases and training")
    ap.add_argument("--tune", action="store_true",
                    help="score the dataset's validation cases, test cases left out")  # fmt: skip
    ap.add_argument(
        "--tag", default="", help="suffix of the semi-supervised arms' names (recipes side by side)"
    )
    ap.add_argument(
        "--recipe", default="", help="JSON fields of semisup.RECIPE for the semi-supervised arms"
    )
    ap.add_argument(
        "--semi-args",
        nargs=argparse.REMAINDER,
        default=[],
        help="extra options of the semi-supervised arms (last on the line)",
    )
    ap.add_argument("--arms", nargs="*", default=None,
                    help="run only these arms (e.g. f25_supervised f25_semi; default all), so "
                    "that two processes can share OUT")  # fmt: skip
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    raw = prepare(args.dataset, args.shared, out, args.tune)
    plan = out / "plan" / "plans.json"
    if not plan.is_file():
        run([*MEDSEG, "auto", "plan", str(raw), "--out", str(plan.parent), "--time-budget",
             "3m", "--threads", "1"], out / "plan.log")  # fmt: skip
    res_path = out / "results.json"
    results = json.loads(res_path.read_text()) if res_path.is_file() else {"arms": {}}
    if (results.get("iterations"), results.get("seed")) != (args.iterations, args.seed):
        results["arms"] = {}  # other settings: rerun every arm
    ending = json.loads((raw / "dataset.json").read_text())["file_ending"]
    cases = sorted(p.name[: -len(ending)] for p in (raw / "labelsTr").iterdir())
    scored = DATASETS[args.dataset]["val" if args.tune else "test"]
    results.update({"dataset": args.dataset, "iterations": args.iterations, "seed": args.seed,
                    "scored": "validation" if args.tune else "test",
                    "semi_args": args.semi_args, "recipe": args.recipe, "test": scored,
                    "n_train": len(cases),
                    "plan": json.loads(plan.read_text())})  # fmt: skip
    fractions = {}
    for f in args.fractions:
        n = max(1, round(f * len(cases)))
        kept = sorted(np.random.default_rng(args.seed).choice(cases, n, replace=False).tolist())
        fractions[f"f{round(100 * f)}"] = {
            "fraction": f,
            "kept": kept,
            "n_unlabeled": len(cases) - n,
        }
    results["fractions"] = fractions
    todo = [("full", raw, None)]
    for key, frac in fractions.items():
        data, unl = subset(raw, frac["kept"], out / "data" / key)
        todo += [(f"{key}_supervised", data, None), (f"{key}_semi{args.tag}", data, unl)]
    res_path.write_text(json.dumps(results, indent=2) + "\n")
    for name, data, unl in todo:
        if args.arms and name not in args.arms:
            continue
        if name not in results["arms"]:
            row = arm(raw, data, out / "models" / name, plan, args, unl)
            results["arms"] = json.loads(res_path.read_text())["arms"]  # another process's
            results["arms"][name] = row
        gaps(results)
        res_path.write_text(json.dumps(results, indent=2) + "\n")
        r = results["arms"][name]
        print(f"{name:16s} Dice {r['mean_dice']:.4f}  train {r['train_s']:.0f} s "
              f"({r['iterations']} it)", flush=True)  # fmt: skip
    for key, frac in fractions.items():
        for k, v in frac.items():
            if k.startswith("gap_recovered"):
                print(f"{key}: {k} {v}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
