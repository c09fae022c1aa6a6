"""Learning from corrections: ``medseg auto train --init`` (fine-tune) vs from scratch on
the labels a user corrected in ``medseg serve``, same fixed iteration count.

Steps (all through the CLI, one torch thread, ``--fold all``):

1. ``medseg auto convert`` the shared set; the held-out cases (ISBI 2012: the last 6
   slices, one block) go to ``imagesTs``/``labelsTs``;
2. ``medseg auto plan`` (``--time-budget 3m``) and ``medseg auto train --iterations
   BASE_IT`` on the first ``--initial`` cases: the *base* model;
3. a datastore as ``medseg serve`` sees it: the initial and the next ``--corrected`` cases
   plus ``--unlabelled`` more images. Through :class:`~medseg.server.labelstore.LabelStore`
   the initial cases get their ground truth (version 1); each corrected case gets the base
   model's prediction (version 1, ``medseg auto predict``) and then its ground truth as the
   user's correction (version 2);
4. ``medseg auto export-labels`` (latest version per image; the unlabelled images are
   skipped);
5. on the export, ``--iterations IT`` each: ``--init base --init-lr LR`` for LR = 1e-3,
   3e-3 and 1e-2, and from scratch (lr 1e-2) with the base's plan (same network);
6. ``medseg auto predict`` every model on the held-out cases, Dice of label 1 per case.

    python benchmarks/auto_corrections.py --shared ../shared/data --out /tmp/auto_corr

Results: ``OUT/results.json``.
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

SETS = {"isbi": {"src": "isbi2012_em", "cases": [f"train_{i:02d}" for i in range(30)], "test": 6}}


def prepare(name: str, shared: Path, out: Path) -> Path:
    """nnU-Net raw folder with the last ``test`` cases in ``imagesTs``/``labelsTs``."""
    test = SETS[name]["cases"][-SETS[name]["test"] :]
    return convert_with_test(shared / SETS[name]["src"], test, out / "raw", out)


def subset(raw: Path, cases: list[str], dst: Path) -> Path:
    """A raw dataset of ``cases`` (images and labels copied) with ``raw``'s dataset.json."""
    if (dst / "dataset.json").is_file():
        return dst
    meta = json.loads((raw / "dataset.json").read_text())
    ending = meta["file_ending"]
    for case in cases:
        for sub, name in (("imagesTr", f"{case}_0000{ending}"), ("labelsTr", f"{case}{ending}")):
            (dst / sub).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(raw / sub / name, dst / sub / name)
    meta["numTraining"] = len(cases)
    (dst / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    return dst


def score(pred: Path, gt: Path) -> dict:
    """Per-case Dice of label 1 (``medseg.metrics.dice``; the full ``evaluate_paths`` with
    HD95/NSD takes ~40 s per 512x512 membrane map on a loaded machine) and their mean."""
    from medseg.io import load_label
    from medseg.metrics import dice

    per_case = {}
    for ref in sorted(gt.iterdir()):
        case = ref.name.split(".")[0]
        per_case[case] = round(float(dice(load_label(pred / ref.name).array == 1,
                                          load_label(ref).array == 1)), 4)  # fmt: skip
    return {"mean_dice": round(float(np.mean(list(per_case.values()))), 4), "per_case": per_case}


def build_store(raw: Path, out: Path, initial: list[str], corrected: list[str],
                unlabelled: list[str], base_pred: Path) -> Path:  # fmt: skip
    """The datastore with label versions saved through LabelStore (see the module doc)."""
    from medseg.io import load_label
    from medseg.server.datastore import Datastore
    from medseg.server.labelstore import LabelInfo, LabelStore

    store = out / "store"
    if (store / "labels").is_dir():
        return store
    meta = json.loads((raw / "dataset.json").read_text())
    ending, name = meta["file_ending"], next(k for k, v in meta["labels"].items() if v == 1)
    for case in initial + corrected + unlabelled:
        store.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(raw / "imagesTr" / f"{case}_0000{ending}", store / f"{case}{ending}")
    ds = Datastore(store)
    labels = LabelStore(ds)
    info = [LabelInfo(1, name, "#ff0000")]
    entries = {e.rel: e for e in ds.scan()}
    for case in initial + corrected:
        entry = entries[f"{case}{ending}"]
        image = ds.load(entry.id)
        truth = load_label(raw / "labelsTr" / f"{case}{ending}").array
        if case in corrected:
            first = load_label(base_pred / f"{case}{ending}").array
            labels.save(entry, image, first, info, note="automatic mask of the base model")
        labels.save(entry, image, truth, info, note="corrected")
    return store


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"), help="shared data")
    ap.add_argument("--out", type=Path, default=Path("/tmp/auto_corr"), help="work folder")
    ap.add_argument("--dataset", choices=sorted(SETS), default="isbi")
    ap.add_argument("--initial", type=int, default=4, help="cases of the base model")
    ap.add_argument("--corrected", type=int, default=12, help="cases corrected in the app")
    ap.add_argument("--unlabelled", type=int, default=4, help="store images left unlabelled")
    ap.add_argument("--base-iterations", type=int, default=300)
    ap.add_argument("--iterations", type=int, default=200, help="fine-tune / scratch budget")
    ap.add_argument("--plan-budget", default="3m", help="medseg auto plan --time-budget")
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    raw = prepare(args.dataset, args.shared, out)
    train = sorted(p.name.split(".")[0] for p in (raw / "labelsTr").iterdir())
    initial = train[: args.initial]
    corrected = train[args.initial : args.initial + args.corrected]
    unlabelled = train[args.initial + args.corrected :][: args.unlabelled]
    common = ["--threads", "1"]
    res: dict = {"dataset": args.dataset, "args": {k: str(v) for k, v in vars(args).items()},
                 "initial": initial, "corrected": corrected, "unlabelled": unlabelled,
                 "held_out": sorted(p.name.split(".")[0] for p in (raw / "labelsTs").iterdir()),
                 "wall_s": {}}  # fmt: skip
    if (out / "results.json").is_file():  # a rerun adds arms: keep the earlier timings
        res["wall_s"] = json.loads((out / "results.json").read_text()).get("wall_s", {})
    base = out / "base"
    if not (base / "fold_all" / "checkpoint_final.pt").is_file():
        data0 = subset(raw, initial, out / "initial")
        run([*MEDSEG, "auto", "plan", str(data0), "--out", str(base), "--time-budget",
             args.plan_budget, *common], out / "plan.log")  # fmt: skip
        res["wall_s"]["base"] = run([*MEDSEG, "auto", "train", str(data0), "--out", str(base),
                                     "--iterations", str(args.base_iterations), "--fold", "all",
                                     *common], out / "train_base.log")  # fmt: skip
    pred_corr = out / "pred_base_corrected"
    if not pred_corr.is_dir():
        images = out / "corrected_images"
        for case in corrected:
            images.mkdir(exist_ok=True)
            f = next((raw / "imagesTr").glob(f"{case}_0000.*"))
            shutil.copyfile(f, images / f.name)
        run([*MEDSEG, "auto", "predict", str(base), str(images), str(pred_corr), *common],
            out / "predict_base_corrected.log")  # fmt: skip
    res["base_on_corrected"] = score(
        pred_corr, subset(raw, corrected, out / "corr_gt") / "labelsTr"
    )
    store = build_store(raw, out, initial, corrected, unlabelled, pred_corr)
    export = out / "export"
    if not (export / "dataset.json").is_file():
        run([*MEDSEG, "auto", "export-labels", str(store), str(export)], out / "export.log")
    res["export"] = json.loads((export / "export.json").read_text())
    arms = {
        "init_lr1e-3": ["--init", str(base), "--init-lr", "0.001"],
        "init_lr3e-3": ["--init", str(base), "--init-lr", "0.003"],
        "init_lr1e-2": ["--init", str(base), "--init-lr", "0.01"],
        "scratch": [],
    }
    models = {"base": base}
    for arm, extra in arms.items():
        model = out / arm
        models[arm] = model
        if (model / "fold_all" / "checkpoint_final.pt").is_file():
            continue
        if not extra:  # same plan (network) as the base model
            model.mkdir(exist_ok=True)
            for name in ("plans.json", "dataset.json", "fingerprint.json"):
                shutil.copyfile(base / name, model / name)
        res["wall_s"][arm] = run([*MEDSEG, "auto", "train", str(export), "--out", str(model),
                                  "--iterations", str(args.iterations), "--fold", "all",
                                  *extra, *common], out / f"train_{arm}.log")  # fmt: skip
    res["held_out_dice"] = {}
    for arm, model in models.items():
        pred = out / "pred" / arm
        if not pred.is_dir():
            run([*MEDSEG, "auto", "predict", str(model), str(raw / "imagesTs"), str(pred),
                 *common], out / f"predict_{arm}.log")  # fmt: skip
        res["held_out_dice"][arm] = score(pred, raw / "labelsTs")
        print(f"{arm:14s} mean Dice {res['held_out_dice'][arm]['mean_dice']:.4f}", flush=True)
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
