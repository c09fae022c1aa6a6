"""3D from one box: a box on a target's largest axial slice, propagated through the volume.

For every target (one class of one case) of the 3D datasets given, each model gets the tight
box of the target on its largest axial slice (``predict(box=..., slice_index=z)``, the
Predictor's propagation) and is scored by 3D Dice against the whole target; the time is
``set_image`` + ``predict`` per target. All models see the same targets and boxes, in one
run, so their figures compare::

    .venv/bin/python benchmarks/propagation_3d.py ../shared/data/totalseg_ref \
        ../shared/data/brats2015_deepmedic ../shared/data/sct_spinalcord_mr \
        --model default --model litemedsam+interactive --model litemedsam --json out.json

``--propagation keyframes --propagation slices`` runs each model with both propagation rules
(``docs/models.md``, "3D propagation"), interleaved per target so both see the same load.

``--cases ID[,ID...]`` runs only those cases, ``--skip-cases ID[,ID...]`` leaves them out
(an ID is a case id as ``medseg.bench.data.discover`` names it, or ``DATASET/ID`` for one
dataset's case; an ID that names no case is an error), before ``--limit`` takes the first
cases of each dataset: e.g. a test run without the validation cases.

Prints one Markdown table: per dataset and model, mean Dice after the box and each click,
median seconds per target (box) and per click, mean encoder runs (embedding-cache misses; a
Predictor keeps a case's embeddings between its targets), and the mean over datasets.
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
from medseg.bench.data import CaseRef, DatasetRef, discover, load_pair
from medseg.errors import MedsegError
from medseg.inference.propagation import PropagationConfig
from medseg.metrics.overlap import dice
from medseg.prompts.simulation.clicks import next_click
from medseg.prompts.types import box_from_mask

log = logging.getLogger("propagation_3d")


def _targets(label: np.ndarray, max_targets: int, min_voxels: int) -> list[int]:
    values, counts = np.unique(label[label > 0], return_counts=True)
    keep = [(int(c), int(v)) for v, c in zip(values, counts, strict=True) if c >= min_voxels]
    return [v for _, v in sorted(keep, reverse=True)[:max_targets]]


def _run_target(
    predictor: medseg.Predictor,
    image,
    target: np.ndarray,
    clicks: int,
    encodes: list[int] | None = None,
) -> tuple[list[float], float, list[float]]:
    """3D Dice after the box and after each correction click, the seconds of set_image +
    box propagation, and the seconds of each correction. ``encodes``, when given, gets the
    encoder runs (embedding-cache misses) of the box propagation and of each correction."""
    misses = predictor.cache_info().misses
    z = int(np.argmax(target.reshape(target.shape[0], -1).sum(axis=1)))
    box = box_from_mask(target[z])
    start = time.perf_counter()
    predictor.set_image(image)
    pred = predictor.predict(box=box, slice_index=z)
    seconds = time.perf_counter() - start
    misses = _count_encodes(predictor, misses, encodes)
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
        misses = _count_encodes(predictor, misses, encodes)
        dices.append(dice(pred.mask, target))
    return dices, seconds, click_seconds


def _count_encodes(predictor: medseg.Predictor, before: int, encodes: list[int] | None) -> int:
    """Append the encoder runs since ``before`` (cache misses) to ``encodes``; the count now."""
    now = predictor.cache_info().misses
    if encodes is not None:
        encodes.append(now - before)
    return now


PROPAGATIONS = {
    "keyframes": PropagationConfig(),
    "keyframes-refine": PropagationConfig(refine_changes=True),
    "keyframes-growth2": PropagationConfig(max_growth=2.0),
    "keyframes-nogrowth": PropagationConfig(max_growth=1e6),
    "slices": PropagationConfig(algorithm="slices"),
}


def _predictors(models: list[str], rules: list[str] | None) -> dict[str, medseg.Predictor]:
    """One Predictor per model and propagation rule, named ``MODEL/RULE`` when rules are
    given (``MODEL`` alone, with the default rule, when not)."""
    if not rules:
        return {m: medseg.Predictor(m, progress=False) for m in models}
    return {f"{m}/{r}": medseg.Predictor(m, progress=False, propagation=PROPAGATIONS[r])
            for m in models for r in rules}  # fmt: skip


def _parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", nargs="+", help="3D dataset folders (images/ + labels/)")
    ap.add_argument("--model", action="append", required=True, help="model name (repeat)")
    ap.add_argument("--max-targets", type=int, default=3, help="largest classes per case")
    ap.add_argument("--min-voxels", type=int, default=200, help="skip smaller targets")
    ap.add_argument("--limit", type=int, default=4,
                    help="cases per dataset (the first, after --cases/--skip-cases)")  # fmt: skip
    ap.add_argument("--cases", type=_id_list, default=None,
                    help="only these cases: ID[,ID...] (case id, or DATASET/ID)")  # fmt: skip
    ap.add_argument("--skip-cases", type=_id_list, default=frozenset(),
                    help="leave these cases out: ID[,ID...] (case id, or DATASET/ID)")  # fmt: skip
    ap.add_argument("--clicks", type=int, default=3,
                    help="correction clicks after the box (each at the centre of the largest "
                         "3D error region, on its slice, with the previous result)")  # fmt: skip
    ap.add_argument("--propagation", action="append", choices=sorted(PROPAGATIONS),
                    help="propagation rule (repeat to compare; each model runs each rule, "
                         "named MODEL/RULE): keyframes (default) or slices (every slice, "
                         "the rule before keyframes)")  # fmt: skip
    ap.add_argument("--json", type=Path, help="write per-target results here")
    return ap.parse_args()


def _id_list(text: str) -> frozenset[str]:
    """``"a,b/c"`` -> ``{"a", "b/c"}`` (the case ids of ``--cases``/``--skip-cases``)."""
    return frozenset(s.strip() for s in text.split(",") if s.strip())


def _named(case: CaseRef, ids: frozenset[str]) -> bool:
    return case.case_id in ids or f"{case.dataset}/{case.case_id}" in ids


def select_cases(
    datasets: list[DatasetRef],
    cases: frozenset[str] | None,
    skip: frozenset[str],
    limit: int,
) -> list[list[CaseRef]]:
    """Per dataset, its cases named by ``cases`` (all when None) and not by ``skip``, the
    first ``limit`` of them. Raises ``SystemExit`` for an id that names no case."""
    known = {i for ds in datasets for c in ds.cases for i in (c.case_id, f"{ds.name}/{c.case_id}")}
    unknown = sorted(((cases or frozenset()) | skip) - known)
    if unknown:
        raise SystemExit(f"--cases/--skip-cases: no such case: {', '.join(unknown)}")
    return [[c for c in ds.cases if (cases is None or _named(c, cases)) and not _named(c, skip)]
            [:limit] for ds in datasets]  # fmt: skip


def main() -> None:
    args = _parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    predictors = _predictors(args.model, args.propagation)
    args.model = list(predictors)
    datasets = [discover(folder) for folder in args.data]
    chosen = select_cases(datasets, args.cases, args.skip_cases, args.limit)
    for ds, cases in zip(datasets, chosen, strict=True):
        log.info("%s: cases %s", ds.name, ", ".join(c.case_id for c in cases) or "none")
    rows: list[dict] = []
    for ds, cases in zip(datasets, chosen, strict=True):
        for case in cases:
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
                    enc: list[int] = []
                    d, s, cs = _run_target(predictor, image, target, args.clicks, enc)
                    rows.append({"dataset": ds.name, "case": case.case_id, "label": value,
                                 "model": name, "dice": d, "seconds": s,
                                 "click_seconds": cs, "encodes": enc})  # fmt: skip
                    log.info("%s/%s label %d %s: Dice %s, %.1f s, encodes %s", ds.name,
                             case.case_id, value, name, " / ".join(f"{x:.3f}" for x in d), s,
                             enc)  # fmt: skip
                    if args.json:  # after every target: an interrupted run keeps its rows
                        args.json.write_text(json.dumps(rows, indent=1))
    if not rows:
        raise SystemExit("no 3D targets found (check the folders, --limit and --min-voxels)")
    print(_table(rows, args.model))


def table_from_json(path: Path, models: list[str]) -> str:
    """The Markdown table of a ``--json`` file (also of an interrupted run)."""
    return _table(json.loads(Path(path).read_text()), models)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _cells(sel: list[dict]) -> tuple[list[float], list[str]]:
    """Mean 3D Dice after the box and each click, and the text cells: those, median seconds
    of the box propagation and of one correction, mean encodes of each (``-`` if absent)."""
    steps = [float(np.mean([r["dice"][i] for r in sel])) for i in range(len(sel[0]["dice"]))]
    cells = [f"{d:.3f}" for d in steps]
    cells.append(f"{_median([r['seconds'] for r in sel]):.1f}")
    cells.append(f"{_median([c for r in sel for c in r['click_seconds']]):.2f}")
    if all(r.get("encodes") for r in sel):
        cells.append(f"{np.mean([r['encodes'][0] for r in sel]):.1f}")
        clicks = [e for r in sel for e in r["encodes"][1:]]
        cells.append(f"{np.mean(clicks):.1f}" if clicks else "-")
    else:
        cells += ["-", "-"]
    return steps, cells


def _table(rows: list[dict], models: list[str]) -> str:
    """Markdown, one row per dataset and model: mean 3D Dice after the box and after each
    click, median seconds of the box propagation (set_image + predict) and of one
    correction, mean encoder runs of each; then the mean Dice over datasets per model."""
    datasets = sorted({r["dataset"] for r in rows})
    n_clicks = len(rows[0]["dice"]) - 1
    head = ["dataset (targets)", "model", "box", *(f"+{i}" for i in range(1, n_clicks + 1)),
            "s box", "s click", "encodes box", "encodes click"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    means: dict[str, list[list[float]]] = {m: [] for m in models}
    for ds in datasets:
        for m in models:
            sel = [r for r in rows if r["dataset"] == ds and r["model"] == m]
            if not sel:
                continue
            steps, cells = _cells(sel)
            means[m].append(steps)
            lines.append(f"| {ds} ({len(sel)}) | {m} | " + " | ".join(cells) + " |")
    for m in models:
        if means[m]:
            mean = np.mean(np.array(means[m]), axis=0)
            lines.append(f"| **mean over {len(means[m])} datasets** | {m} | "
                         + " | ".join(f"**{d:.3f}**" for d in mean) + " | | | | |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
