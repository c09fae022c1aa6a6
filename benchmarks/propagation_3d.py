"""3D from one box: a box on a target's largest axial slice, propagated through the volume.

For every target (one class of one case) of the 3D datasets given, each model gets the tight
box of the target on its largest axial slice (``predict(box=..., slice_index=z)``, the
Predictor's propagation) and is scored by 3D Dice against the whole target; the time is
``set_image`` + ``predict`` per target. All models see the same targets and boxes, in one
run, so their figures compare::

    .venv/bin/python benchmarks/propagation_3d.py ../shared/data/totalseg_ref \
        ../shared/data/brats2015_deepmedic ../shared/data/sct_spinalcord_mr \
        --model default --model litemedsam+interactive --model litemedsam --json out.json

Prints one Markdown table: per dataset and model, mean Dice and median seconds per target,
and the mean over datasets.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import medseg
from medseg.bench.data import discover, load_pair
from medseg.errors import MedsegError
from medseg.metrics.overlap import dice
from medseg.prompts.simulation.clicks import next_click
from medseg.prompts.types import box_from_mask

log = logging.getLogger("propagation_3d")


def _targets(label: np.ndarray, max_targets: int, min_voxels: int) -> list[int]:
    values, counts = np.unique(label[label > 0], return_counts=True)
    keep = [(int(c), int(v)) for v, c in zip(values, counts, strict=True) if c >= min_voxels]
    return [v for _, v in sorted(keep, reverse=True)[:max_targets]]


def _run_target(
    predictor: medseg.Predictor, image, target: np.ndarray, clicks: int
) -> tuple[list[float], float, list[float]]:
    """3D Dice after the box and after each correction click, the seconds of set_image +
    box propagation, and the seconds of each correction."""
    z = int(np.argmax(target.reshape(target.shape[0], -1).sum(axis=1)))
    box = box_from_mask(target[z])
    start = time.perf_counter()
    predictor.set_image(image)
    pred = predictor.predict(box=box, slice_index=z)
    seconds = time.perf_counter() - start
    dices, click_seconds = [dice(pred.mask, target)], []
    clicked = np.zeros(target.shape, bool)
    for _ in range(clicks):
        click = next_click(pred.mask, target, clicked=clicked)
        if click is None:
            dices.append(dices[-1])
            continue
        x, y, cz = click.point
        clicked[cz, y, x] = True
        t0 = time.perf_counter()
        pred = predictor.predict(points=[(x, y)], point_labels=[click.label], slice_index=cz,
                                 mask_input=pred)  # fmt: skip
        click_seconds.append(time.perf_counter() - t0)
        dices.append(dice(pred.mask, target))
    return dices, seconds, click_seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", nargs="+", help="3D dataset folders (images/ + labels/)")
    ap.add_argument("--model", action="append", required=True, help="model name (repeat)")
    ap.add_argument("--max-targets", type=int, default=3, help="largest classes per case")
    ap.add_argument("--min-voxels", type=int, default=200, help="skip smaller targets")
    ap.add_argument("--limit", type=int, default=4, help="cases per dataset")
    ap.add_argument("--clicks", type=int, default=3,
                    help="correction clicks after the box (each at the centre of the largest "
                         "3D error region, on its slice, with the previous result)")  # fmt: skip
    ap.add_argument("--json", type=Path, help="write per-target results here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    predictors = {m: medseg.Predictor(m, progress=False) for m in args.model}
    rows: list[dict] = []
    for folder in args.data:
        ds = discover(folder)
        for case in ds.cases[: args.limit]:
            try:
                image, label = load_pair(ds, case)
            except MedsegError as exc:
                log.info("%s/%s skipped: %s", ds.name, case.case_id, exc)
                continue
            if image.ndim != 3:
                continue
            for value in _targets(label.array, args.max_targets, args.min_voxels):
                target = label.array == value
                for name, predictor in predictors.items():
                    d, s, cs = _run_target(predictor, image, target, args.clicks)
                    rows.append({"dataset": ds.name, "case": case.case_id, "label": value,
                                 "model": name, "dice": d, "seconds": s,
                                 "click_seconds": cs})  # fmt: skip
                    log.info("%s/%s label %d %s: Dice %s, %.1f s", ds.name, case.case_id,
                             value, name, " / ".join(f"{x:.3f}" for x in d), s)  # fmt: skip
                    if args.json:  # after every target: an interrupted run keeps its rows
                        args.json.write_text(json.dumps(rows, indent=1))
    if not rows:
        raise SystemExit("no 3D targets found (check the folders, --limit and --min-voxels)")
    print(_table(rows, args.model))


def table_from_json(path: Path, models: list[str]) -> str:
    """The Markdown table of a ``--json`` file (also of an interrupted run)."""
    return _table(json.loads(Path(path).read_text()), models)


def _table(rows: list[dict], models: list[str]) -> str:
    """Markdown: per dataset and model, mean 3D Dice after the box and after the last
    click, median seconds of the box propagation and of one correction."""
    datasets = sorted({r["dataset"] for r in rows})
    head = "| dataset (targets) | " + " | ".join(
        f"{m}: box / +{len(rows[0]['dice']) - 1} clicks / s box / s click" for m in models
    ) + " |"  # fmt: skip
    lines = [head, "|---" * (len(models) + 1) + "|"]
    means: dict[str, list[tuple[float, float]]] = {m: [] for m in models}
    for ds in datasets:
        cells = []
        for m in models:
            sel = [r for r in rows if r["dataset"] == ds and r["model"] == m]
            box = float(np.mean([r["dice"][0] for r in sel]))
            last = float(np.mean([r["dice"][-1] for r in sel]))
            means[m].append((box, last))
            clicks = [c for r in sel for c in r["click_seconds"]] or [float("nan")]
            cells.append(f"{box:.3f} / {last:.3f} / "
                         f"{statistics.median(r['seconds'] for r in sel):.1f} / "
                         f"{statistics.median(clicks):.2f}")  # fmt: skip
        n = len([r for r in rows if r["dataset"] == ds and r["model"] == models[0]])
        lines.append(f"| {ds} ({n}) | " + " | ".join(cells) + " |")
    lines.append("| **mean over datasets** | " + " | ".join(
        f"**{np.mean([b for b, _ in means[m]]):.3f} / {np.mean([c for _, c in means[m]]):.3f}**"
        for m in models) + " | |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
