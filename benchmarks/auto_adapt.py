"""``medseg auto predict --adapt`` (test-time adaptation: entropy + class-balance) with and
without, across datasets of one anatomy/modality group and on recorded intensity shifts.

Steps (all training and the reported predictions through the CLI, one torch thread):

1. every source in ``SOURCES`` is converted (``medseg auto convert``) with its last
   ``holdout`` cases (sorted ids) in ``imagesTs``/``labelsTs``; every target dataset is
   converted with all its cases as test cases and resized (images bilinear, labels nearest)
   to the source's median image height (aspect kept), so the shift is one of appearance,
   not of scale;
2. one plan per source (``medseg auto plan --time-budget 3m``, recorded in the results) is
   copied into the model folder with its ``fingerprint.json`` (the class frequencies of the
   balance term), then ``medseg auto run --fold all --iterations N --threads 1`` (a fixed
   count, so the machine's load does not change the model; skipped when the model's
   ``report/report.json`` exists);
3. ``--select``: the adaptation settings (learning rate, class-balance weight, safeguard)
   are compared in-process on the validation pair ``VALIDATION`` only, before any other
   pair is predicted; the chosen values are ``AdaptConfig``'s defaults;
4. every set (the source's held-out cases, each target, and for ISBI the ``SHIFTS`` of its
   held-out slices): ``medseg auto predict MODEL SET PRED`` plain, ``--adapt`` (defaults)
   and ``--adapt --adapt-balance 0`` (plain TENT), scored by
   ``medseg.metrics.evaluate_paths`` (Dice of label 1 per case, mean over cases).

    nice -n 10 python benchmarks/auto_adapt.py --shared ../shared/data --out /tmp/auto_adapt

Results: ``OUT/results.json`` and ``benchmarks/results/auto_adapt.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from auto_common import MEDSEG, convert_with_test, run, write_results

#: Source datasets, their held-out case count and the target datasets of the same group.
SOURCES = {
    "isbi": {"src": "isbi2012_em", "holdout": 6, "targets": {}},
    "drive": {"src": "drive_retina_vessels", "holdout": 4,
              "targets": {"chasedb1": "chasedb1_retina_vessels", "hrf": "hrf_retina_vessels"}},
    "cvc": {"src": "cvc_colondb_polyp", "holdout": 3, "targets": {"kvasir": "kvasir_seg_sample"}},
    "isic": {"src": "isic2017_skin_lesion", "holdout": 2,
             "targets": {"ham10000": "ham10000_isic_sample"}},
    # Nuclei (instance labels binarised, no resizing: nucleus size, not image height, sets
    # the scale). Fluorescence nuclear stain, 1 gray channel, on both sides:
    "dsbfluo": {"src": "dsb2018_nuclei:fluorescence", "holdout": 2, "resize": False,
                "targets": {"stardist": "stardist_nuclei"}},
    # H&E-stained tissue, RGB, on both sides:
    "miccai15": {"src": "miccai15_nuclei", "holdout": 3, "resize": False,
                 "targets": {"dsbtissue": "dsb2018_nuclei:stained tissue (RGB)"}},
}  # fmt: skip
#: Datasets with instance labels (converted with ``--binarize``: nucleus = 1).
INSTANCE = ("dsb2018_nuclei", "stardist_nuclei", "miccai15_nuclei")
#: The pair the adaptation settings are chosen on (source, target).
VALIDATION = ("drive", "chasedb1")
#: Settings compared by ``--select`` (``AdaptConfig`` fields; ``None``: no adaptation). The
#: first grid (lr, W, reject_worse; ``auto_adapt_select.json``) chose lr 1e-3, W 1 ("old");
#: this one adds the mirror-consistency term, the agreement rule and more steps.
GRID = [None, {"lr": 1e-3, "balance": 1.0},
        {"lr": 1e-3, "balance": 1.0, "consistency": 1.0},
        {"lr": 1e-3, "balance": 1.0, "reject_worse": True, "min_agreement": 0.9},
        {"lr": 3e-3, "balance": 1.0, "consistency": 1.0, "reject_worse": True,
         "min_agreement": 0.9},
        {"lr": 1e-3, "balance": 1.0, "consistency": 1.0, "steps": 20, "reject_worse": True,
         "min_agreement": 0.9}]  # fmt: skip
#: Intensity shifts of the 8-bit ISBI test images (x in [0, 255]; noise seeded per case).
SHIFTS = {
    "gamma2": "255 * (x / 255) ** 2.0 (darker mid-tones, lower contrast in dark regions)",
    "gamma0.5": "255 * (x / 255) ** 0.5 (brighter mid-tones)",
    "noise15": "x + N(0, 15), clipped to [0, 255], seed = case index",
    "contrast_noise": "128 + 0.5 * (x - 128) + N(0, 10), clipped, seed = case index",
}
#: "old": the first defaults (lr 1e-3, W 1, no consistency, no agreement rule), spelled out;
#: "v2": the setting chosen by the second ``--select`` grid (not the default: it lowered
#: Dice by more than 0.01 on two ISBI sets); "adapt": ``AdaptConfig``'s defaults (= "old").
MODES = {"plain": [], "adapt": ["--adapt"],
         "v2": ["--adapt", "--adapt-steps", "20", "--adapt-consistency", "1",
                "--adapt-agreement", "0.9"], "tent": ["--adapt", "--adapt-balance", "0"],
         "old": ["--adapt", "--adapt-steps", "10", "--adapt-lr", "1e-3", "--adapt-balance", "1",
                 "--adapt-consistency", "0", "--adapt-agreement", "0"]}  # fmt: skip


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


def _case_ids(folder: Path) -> list[str]:
    return sorted(f.stem for f in (folder / "images").iterdir() if f.suffix == ".png")


def median_height(folder: Path) -> int:
    """Median image height (rows) of a shared 2D dataset's ``images/``."""
    from PIL import Image as PILImage

    return int(np.median([PILImage.open(f).size[1] for f in sorted((folder / "images").iterdir())]))


def resizer(height: int):
    """A ``convert_with_test`` transform resizing every 2D PNG of a raw folder to ``height``
    rows (aspect kept; images bilinear, labels nearest)."""
    from PIL import Image as PILImage

    def transform(raw: Path) -> None:
        for sub, method in (("imagesTr", PILImage.BILINEAR), ("labelsTr", PILImage.NEAREST)):
            for f in sorted((raw / sub).glob("*.png")):
                im = PILImage.open(f)
                width = round(im.size[0] * height / im.size[1])
                im.resize((width, height), method).save(f)

    return transform


def source_folder(shared: Path, out: Path, spec: str) -> tuple[Path, list[str]]:
    """The shared folder of ``spec`` (``NAME`` or ``NAME:IMAGE_TYPE``) and its convert
    options; with an image type, a folder under ``out/subsets`` of links to the cases whose
    manifest ``extra.image_type`` is that type."""
    name, _, kind = spec.partition(":")
    args = ["--binarize"] if name in INSTANCE else []
    if not kind:
        return shared / name, args
    datasets = json.loads((shared / "manifest.json").read_text())["datasets"]
    manifest = next(d for d in datasets if d["name"] == name)
    folder = out / "subsets" / f"{name}_{kind.split()[0]}"
    for sub in ("images", "labels"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for case in manifest["cases"]:
        if case["extra"].get("image_type") == kind:
            for sub, rel in (("images", case["images"][0]), ("labels", case["label"])):
                link = folder / sub / Path(rel).name
                if not link.exists():
                    link.symlink_to(shared / rel)
    return folder, args


def prepare(shared: Path, out: Path, name: str) -> tuple[Path, dict[str, Path]]:
    """The source raw folder and one raw folder per target (all its cases in imagesTs)."""
    spec = SOURCES[name]
    src, args = source_folder(shared, out, spec["src"])
    work = out / name
    work.mkdir(parents=True, exist_ok=True)
    raw = convert_with_test(src, _case_ids(src)[-spec["holdout"] :], work / "raw", work, args)
    targets = {}
    for tname, tdir in spec["targets"].items():
        tsrc, targs = source_folder(shared, out, tdir)
        resize = resizer(median_height(src)) if spec.get("resize", True) else None
        targets[tname] = convert_with_test(
            tsrc, _case_ids(tsrc), work / f"raw_{tname}", work, targs, transform=resize
        )
    return raw, targets


def train(raw: Path, work: Path, iterations: int) -> dict:
    """Plan once (3 min budget), then a fixed number of iterations on all training cases."""
    plan_dir, model = work / "plan", work / "model"
    if not (plan_dir / "plans.json").is_file():
        run([*MEDSEG, "auto", "plan", str(raw), "--out", str(plan_dir), "--time-budget", "3m",
             "--threads", "1"], work / "plan.log")  # fmt: skip
    info = {"plan": json.loads((plan_dir / "plans.json").read_text()), "iterations": iterations}
    if not (model / "report" / "report.json").is_file():
        model.mkdir(parents=True, exist_ok=True)
        for f in ("plans.json", "fingerprint.json", "dataset.json"):
            shutil.copyfile(plan_dir / f, model / f)
        info["train_s"] = round(run(
            [*MEDSEG, "auto", "run", str(raw), "--out", str(model), "--fold", "all",
             "--iterations", str(iterations), "--seed", "0", "--threads", "1"],
            work / "train.log"), 1)  # fmt: skip
    return info


def write_shifted(raw: Path, out: Path) -> dict[str, Path]:
    """One image folder per ``SHIFTS`` rule, from ``raw/imagesTs``."""
    from medseg.io import load, save

    sets = {}
    for rule in SHIFTS:
        folder = out / "shifted" / rule
        for i, f in enumerate(sorted((raw / "imagesTs").iterdir())):
            target = folder / f.name
            if not target.is_file():
                image = load(f)
                save(image.with_array(shift_image(image.array, rule, i)), target)
        sets[rule] = folder
    return sets


def score(pred: Path, labels: Path) -> dict:
    """Per-case Dice of label 1 and their mean."""
    from medseg.metrics.evaluate import EvaluationConfig, evaluate_paths

    res = evaluate_paths(pred, labels, EvaluationConfig(labels=(1,)))
    per_case = {r["case"]: float(r["dice"]) for r in res.rows}
    return {"mean_dice": float(np.mean(list(per_case.values()))), "per_case": per_case}


def select(model: Path, images: Path, labels: Path, work: Path, steps: int) -> list[dict]:
    """Mean Dice of every ``GRID`` setting on one set, in-process (one torch thread)."""
    import torch

    from medseg.automatic.adapt import AdaptConfig, AdaptedModel
    from medseg.automatic.model import AutoModel
    from medseg.automatic.predict import predict_folder

    torch.set_num_threads(1)
    base = AutoModel(model)
    rows = []
    for setting in GRID:
        tag = "plain" if setting is None else "_".join(f"{k}{v:g}" for k, v in setting.items())
        pred = work / "select" / tag
        shutil.rmtree(pred, ignore_errors=True)
        t0 = time.perf_counter()
        if setting is None:
            predict_folder(base, images, pred)
            row = {"setting": None, **score(pred, labels)}
        else:
            adapted = AdaptedModel(base, AdaptConfig(**{"steps": steps, "max_seconds": 3600.0,
                                                        **setting}))  # fmt: skip
            predict_folder(adapted, images, pred)
            row = {"setting": setting, **score(pred, labels), "summary": adapted.summary()}
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(f"select {tag}: {row['mean_dice']:.4f} ({row['wall_s']} s)", flush=True)
    return rows


def evaluate(model: Path, images: Path, labels: Path, work: Path, name: str,
             adapt_args: list[str], modes: list[str]) -> dict:  # fmt: skip
    """Plain and adapted predictions of one set through the CLI (``MODES`` named)."""
    row: dict = {}
    for mode in modes:
        extra = MODES[mode]
        pred = work / "pred" / f"{name}_{mode}"
        shutil.rmtree(pred, ignore_errors=True)
        log = work / f"predict_{name}_{mode}.log"
        args = [*extra, *adapt_args] if extra else []
        wall = run([*MEDSEG, "auto", "predict", str(model), str(images), str(pred),
                    "--threads", "1", *args], log)  # fmt: skip
        row[mode] = {**score(pred, labels), "wall_s": round(wall, 1)}
        if extra:
            row[mode]["summary"] = [x for x in log.read_text().splitlines() if "--adapt" in x]
    for mode in modes:
        if mode != "plain":
            row[f"delta_{mode}"] = row[mode]["mean_dice"] - row["plain"]["mean_dice"]
    print(f"{name:22s} " + "  ".join(f"{m} {row[m]['mean_dice']:.4f}" for m in modes), flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"),
                    help="the shared data folder")  # fmt: skip
    ap.add_argument("--out", type=Path, default=Path("/tmp/auto_adapt"), help="work folder")
    ap.add_argument("--sources", nargs="*", default=list(SOURCES), choices=list(SOURCES),
                    help="source datasets to run")  # fmt: skip
    ap.add_argument("--iterations", type=int, default=500, help="training iterations")
    ap.add_argument("--stage", choices=["train", "select", "eval"], default="eval",
                    help="train only, select on the validation pair, or evaluate")  # fmt: skip
    ap.add_argument("--modes", nargs="*", default=["plain", "old", "v2"], choices=list(MODES),
                    help="prediction modes per set (tent = --adapt-balance 0)")  # fmt: skip
    ap.add_argument("--tag", default="", help="suffix of the result file name")
    ap.add_argument("--adapt-steps", type=int, default=10, help="steps of the --select grid")
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results",
                    help="folder of the result JSON copy")  # fmt: skip
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    adapt_args = ["--adapt-time", "3600s"]
    name = f"auto_adapt{'_select' if args.stage == 'select' else ''}{args.tag}.json"
    path = out / name
    results: dict = json.loads(path.read_text()) if path.is_file() else {}
    results.update({"iterations": args.iterations, "adapt_args": adapt_args, "shifts": SHIFTS,
                    "validation_pair": list(VALIDATION)})  # fmt: skip
    results.setdefault("sources", {})
    for src in args.sources if args.stage != "select" else [VALIDATION[0]]:
        raw, targets = prepare(args.shared, out, src)
        work = out / src
        info = results["sources"].setdefault(src, {})
        info.update(train(raw, work, args.iterations))
        if args.stage == "train":
            continue
        model = work / "model"
        if args.stage == "select":
            t = targets[VALIDATION[1]]
            results["select"] = select(
                model, t / "imagesTs", t / "labelsTs", work, args.adapt_steps
            )
            write_results(results, out, args.results / name)
            continue
        sets = {f"{src} held-out": (raw / "imagesTs", raw / "labelsTs")}
        sets.update({f"{src} -> {t}": (d / "imagesTs", d / "labelsTs") for t, d in targets.items()})
        if src == "isbi":
            for rule, folder in write_shifted(raw, work).items():
                sets[f"isbi {rule}"] = (folder, raw / "labelsTs")
        info.setdefault("sets", {})
        for set_name, (images, labels) in sets.items():
            tag = set_name.replace(" -> ", "_to_").replace(" ", "_")
            info["sets"][set_name] = evaluate(
                model, images, labels, work, tag, adapt_args, args.modes
            )
            write_results(results, out, args.results / name)
    write_results(results, out, args.results / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
