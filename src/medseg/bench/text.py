"""``medseg bench text``: text-prompt segmentation measured the way a user would meet it.

For every target of every case (a class of a 2D image, or a class on its largest slice of a
3D case, as in :mod:`medseg.bench.data`) the label's name is the phrase
(``"kidney_left"`` -> "left kidney" by :func:`medseg.prompts.text.parse_target`); names that
are not in the vocabulary are reported as skipped. Per target:

- **text alone**: ``Predictor.predict(text=name)``; a target reported not found has Dice 0;
- **text + k clicks** (k = 1 .. ``clicks``): the bench's click rule
  (:func:`medseg.prompts.simulation.clicks.next_click`: centre of the largest error region)
  adds one click at a time: ``predict(text=name, points=[click])`` corrects the text mask,
  then ``predict(points=all clicks, mask_input=previous result)``;
- **synonyms**: text-alone Dice under up to ``synonyms`` other names of the same target.

Per image, **absent targets** are asked for too: classes the dataset labels that have no
pixel in this image, and targets that only datasets of another body region show
(:data:`DATASET_REGION`); a non-empty mask for one of them is a false positive.
**Time to first mask** is ``set_image`` + the first ``predict(text=...)`` of each image.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg.bench.data import discover, load_pair, materialize, plan_case
from medseg.errors import InputError, PromptError
from medseg.metrics.overlap import dice
from medseg.prompts.simulation.clicks import next_click
from medseg.prompts.text import load_vocabulary, modality_code, parse_target

__all__ = ["DATASET_REGION", "RADIOLOGICAL", "TextBenchConfig", "absent_candidates",
           "dataset_modality", "format_text_table", "regions_overlap", "run_text_bench",
           "summarize"]  # fmt: skip

log = logging.getLogger(__name__)

# The body region each shared dataset shows: a target that only datasets of other regions
# show is absent from this dataset's images (used for absent-target checks and training).
DATASET_REGION = {
    "isbi2012_em": "em", "miccai15_nuclei": "histo", "glas_colon_glands": "histo",
    "sammed2d_demo": "body", "totalseg_ref": "body", "msd_spleen_ct_slices": "body",
    "msd_lung_tumour_ct_slices": "body", "pansegdata_pancreas_t2_mr": "body",
    "kvasir_seg_sample": "colonoscopy", "cvc_colondb_polyp": "colonoscopy",
    "ham10000_isic_sample": "skin", "isic2017_skin_lesion": "skin", "cxr_lung_demo": "chest-xr",
    "jsrt_scr_cxr": "chest-xr", "stardist_nuclei": "cells", "dsb2018_nuclei": "cells",
    "brats2015_deepmedic": "brain", "mricron_atlas": "brain", "busi_breast_us": "breast-us",
    "hc18_fetal_head_us": "fetal-us", "tg3k_thyroid_us": "neck-us", "ccaus_carotid_us": "neck-us",
    "us_nerve_bp": "neck-us", "drive_retina_vessels": "fundus", "chasedb1_retina_vessels": "fundus",
    "hrf_retina_vessels": "fundus", "sct_spinalcord_mr": "spine", "npc_nasopharynx_t2_mr": "head",
    "arcade_stenosis_xca": "angio", "cdd_cesm_mammo_lesion": "mammo",
}  # fmt: skip
# Whole-body CT/MR (region "body") can show what any radiological image shows, and back.
RADIOLOGICAL = frozenset({"body", "chest-xr", "brain", "breast-us", "fetal-us", "neck-us",
                          "spine", "head", "angio", "mammo"})  # fmt: skip


def regions_overlap(image_region: str, target_regions: set[str]) -> bool:
    """True when an image of ``image_region`` may show a target labelled in datasets of
    ``target_regions`` (same region, or whole-body CT/MR against any radiological region)."""
    if image_region in target_regions:
        return True
    if image_region == "body":
        return bool(target_regions & RADIOLOGICAL)
    return "body" in target_regions and image_region in RADIOLOGICAL


@dataclass(frozen=True)
class TextBenchConfig:
    """Settings of one text benchmark run (written into ``results.json``)."""

    model: str = "litemedsam+interactive"
    clicks: int = 3
    synonyms: int = 2
    absent_per_image: int = 3
    limit: int | None = None
    max_targets: int | None = None
    seed: int = 0
    text_weights: str | None = None
    text_prior: bool = False  # the anatomical prior (Predictor.text_prior = True)

    def __post_init__(self) -> None:
        for name in ("clicks", "synonyms", "absent_per_image"):
            if int(getattr(self, name)) < 0:
                raise InputError(f"{name} must be >= 0, got {getattr(self, name)}")


_DESCRIPTION_CODES = (
    ("ct", "CT"),
    ("mr", "MR"),
    ("ultrasound", "US"),
    ("x-ray coronary", "XA"),
    ("chest x-ray", "XR"),
    ("mammograph", "MG"),
)


def dataset_modality(root: Path, image_modality: str | None) -> str | None:
    """The vocabulary modality code of an image: its own (CT/MR volumes), else the one the
    shared-data ``manifest.json`` describes for the dataset at ``root`` (8-bit PNG slices
    carry none), else None."""
    from medseg.bench.data import _manifest_entry

    code = modality_code(image_modality)
    if code is not None:
        return code
    text = str((_manifest_entry(Path(root)) or {}).get("modality", "")).lower()
    return next((c for prefix, c in _DESCRIPTION_CODES if text.startswith(prefix)), None)


def absent_candidates(dataset: str, names_here: set[str], labelled: dict[int, str],
                      modality: str | None) -> list[str]:  # fmt: skip
    """Phrases of targets that are not in an image of ``dataset``: its labelled classes
    with no pixel in the image (``labelled`` minus ``names_here``), then vocabulary targets
    that only datasets of other regions show (of the image's ``modality`` when it has one:
    the Predictor refines other modalities' targets as errors)."""
    out = [n for n in labelled.values() if n not in names_here and n != "background"]
    region = DATASET_REGION.get(dataset)
    if region is None:
        return out
    code = modality_code(modality)
    for t in load_vocabulary().targets.values():
        regions = {DATASET_REGION.get(d, "?") for d in t.datasets}
        if t.generic or t.base is not None or not t.datasets or regions_overlap(region, regions):
            continue
        if code is None or code in t.modalities:
            out.append(t.name)
    return out


def _phrases(name: str, modality: str | None, k: int) -> tuple[Any, list[str]]:
    """The parsed target of label ``name`` and up to ``k`` other names of it."""
    q = parse_target(name.replace("_", " "), modality=modality)
    others = [s for s in q.target.synonyms if s != q.target.name][:k]
    return q, [q.target.name, *others]


def _click_curve(pred: Any, phrase: str, gt: np.ndarray, first: Any, clicks: int) -> list[float]:
    """Dice after 1..``clicks`` simulated corrective clicks on the text result ``first``: the
    first click goes with the text (``predict(text=, points=)``), later ones with every
    click so far and the previous result as ``mask_input``, as a viewer sends them."""
    points: list[tuple[int, int]] = []
    labels: list[int] = []
    clicked = np.zeros(gt.shape, bool)
    r, out = first, []
    for _ in range(clicks):
        c = next_click(r.mask, gt, clicked=clicked)
        if c is None:  # nothing left to correct
            out.append(out[-1] if out else dice(r.mask, gt))
            continue
        points.append(c.point)
        labels.append(c.label)
        clicked[c.point[1], c.point[0]] = True
        if len(points) == 1:
            r = pred.predict(text=phrase, points=points, point_labels=labels)
        else:
            r = pred.predict(points=points, point_labels=labels, mask_input=r)
        out.append(dice(r.mask, gt))
    return out


def _run_target(pred: Any, target: Any, cfg: TextBenchConfig, modality: str | None) -> dict:
    spec = target.spec
    row: dict[str, Any] = {"dataset": spec.dataset, "case": spec.case_id,
                           "target": spec.target_id, "label_name": spec.label_name}  # fmt: skip
    q, names = _phrases(spec.label_name or "", modality, cfg.synonyms)
    t0 = time.perf_counter()
    r = pred.predict(text=names[0])
    row.update(phrase=names[0], seconds=time.perf_counter() - t0, found=r.found[0],
               presence=float(r.score), dice=dice(r.mask, target.mask))  # fmt: skip
    row["dice_clicks"] = _click_curve(pred, names[0], target.mask, r, cfg.clicks)
    row["synonyms"] = {n: dice(pred.predict(text=n).mask, target.mask) for n in names[1:]}
    row.update(target_name=q.target.name, modality=modality)
    return row


def _absent_rows(pred: Any, image_key: tuple, cands: list[str], cfg: TextBenchConfig,
                 rng: np.random.Generator) -> list[dict]:  # fmt: skip
    picks = [cands[i] for i in sorted(rng.permutation(len(cands))[: cfg.absent_per_image])]
    rows = []
    for name in picks:
        try:
            r = pred.predict(text=name.replace("_", " "))
        except PromptError as exc:
            log.info("absent check %r skipped: %s", name, exc)
            continue
        rows.append({"dataset": image_key[0], "case": image_key[1], "slice": image_key[2],
                     "phrase": name, "found": r.found[0], "pixels": int(r.mask.sum()),
                     "presence": float(r.score)})  # fmt: skip
    return rows


def _run_case(pred: Any, ds: Any, case: Any, cfg: TextBenchConfig, rng, out: dict) -> None:
    """All targets of one case, then the absent checks of each of its images."""
    image, label = load_pair(ds, case)
    specs, _ = plan_case(ds, label, case.case_id, max_targets=cfg.max_targets, rng=rng)
    names = ds.names_for(case.case_id)
    current, set_s, z = None, 0.0, None
    for target in materialize(image, label, specs):
        spec = target.spec
        if target.image is not current:
            if current is not None:
                _absent_for(pred, ds, case, label, names, z, cfg, rng, out)
            current, z, t0 = target.image, spec.slice_index, time.perf_counter()
            pred.set_image(current)
            set_s, first = time.perf_counter() - t0, True
        try:
            row = _run_target(pred, target, cfg, dataset_modality(ds.root, current.modality))
        except PromptError as exc:
            out["skipped"].append({"dataset": ds.name, "case": case.case_id,
                                   "target": spec.target_id, "reason": str(exc)})  # fmt: skip
            continue
        if first:  # the encoder runs at set_image or at the first predict: count both
            out["first_mask_s"].append(set_s + row["seconds"])
            first = False
        out["targets"].append(row)
    if current is not None:
        _absent_for(pred, ds, case, label, names, z, cfg, rng, out)


def _absent_for(pred, ds, case, label, names, z, cfg, rng, out) -> None:
    here = label.array if z is None else label.array[z]
    present = {names.get(int(v), "") for v in np.unique(here) if v}
    # the image's own modality: an 8-bit PNG has none, so any phrase can be asked of it
    cands = absent_candidates(ds.name, present, names, pred.image.modality)
    out["absent"] += _absent_rows(pred, (ds.name, case.case_id, z), cands, cfg, rng)


def _means(rows: list[dict], clicks: int) -> dict[str, Any]:
    if not rows:
        return {"targets": 0}
    curve = [float(np.mean([r["dice_clicks"][k] for r in rows])) for k in range(clicks)]
    syn = [abs(d - r["dice"]) for r in rows for d in r["synonyms"].values()]
    return {"targets": len(rows), "dice_text": float(np.mean([r["dice"] for r in rows])),
            "dice_clicks": curve, "found": float(np.mean([r["found"] for r in rows])),
            "synonym_gap": float(np.mean(syn)) if syn else None}  # fmt: skip


def summarize(out: dict, clicks: int) -> dict[str, Any]:
    """Means per dataset, over CT/MR images and over all targets; absent-target false
    positives; median time to the first mask."""
    rows = out["targets"]
    datasets = sorted({r["dataset"] for r in rows})
    absent = out["absent"]
    false_pos = float(np.mean([a["pixels"] > 0 for a in absent])) if absent else None
    return {
        "datasets": {d: _means([r for r in rows if r["dataset"] == d], clicks) for d in datasets},
        "ct_mr": _means([r for r in rows if r["modality"] in ("CT", "MR")], clicks),
        "all": _means(rows, clicks),
        "absent": {"asked": len(absent), "mask_returned": false_pos},
        "first_mask_s_median": float(np.median(out["first_mask_s"])) if rows else None,
        "skipped": len(out["skipped"]),
    }


def format_text_table(summary: dict[str, Any], clicks: int) -> str:
    """A markdown table: one line per dataset, then CT/MR and all."""
    cols = ["text", *(f"+{k + 1} click" for k in range(clicks)), "found", "synonym gap"]
    lines = ["| dataset | targets | " + " | ".join(cols) + " |",
             "|---|---:|" + "---:|" * len(cols)]  # fmt: skip

    def line(name: str, m: dict) -> str:
        if not m.get("targets"):
            return f"| {name} | 0 |" + " |" * len(cols)
        gap = "-" if m["synonym_gap"] is None else f"{m['synonym_gap']:.3f}"
        vals = [f"{m['dice_text']:.3f}", *(f"{v:.3f}" for v in m["dice_clicks"]),
                f"{m['found']:.2f}", gap]  # fmt: skip
        return f"| {name} | {m['targets']} | " + " | ".join(vals) + " |"

    lines += [line(d, m) for d, m in summary["datasets"].items()]
    lines += [line("**CT/MR**", summary["ct_mr"]), line("**all**", summary["all"])]
    a = summary["absent"]
    if a["asked"]:
        lines.append(f"\nabsent targets: a mask for {a['mask_returned']:.1%} of {a['asked']}")
    if summary["first_mask_s_median"] is not None:
        first = summary["first_mask_s_median"]
        lines.append(f"first mask (set_image + text): median {first:.2f} s")
    return "\n".join(lines)


def run_text_bench(
    data: Sequence[str | Path],
    config: TextBenchConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
    command: Sequence[str] = (),
) -> dict[str, Any]:
    """Run the text benchmark (module docstring) on dataset folders ``data``; writes
    ``results.json`` and ``text_dice.png`` into ``out_dir`` and returns the payload
    (``summary``, ``table``, per-target ``targets``, ``absent``, ``skipped``)."""
    from tqdm.auto import tqdm

    from medseg.bench.report import write_json
    from medseg.inference import Predictor

    pred = Predictor(config.model, progress=False, text_weights=config.text_weights)
    pred.text_prior = config.text_prior
    rng = np.random.default_rng(config.seed)
    out: dict[str, list] = {"targets": [], "absent": [], "skipped": [], "first_mask_s": []}
    refs = [discover(p) for p in data]
    jobs = [(ds, c) for ds in refs for c in ds.cases[: config.limit]]
    for ds, case in tqdm(jobs, desc="bench text", unit="case", disable=not progress):
        try:
            _run_case(pred, ds, case, config, rng, out)
        except InputError as exc:
            out["skipped"].append({"dataset": ds.name, "case": case.case_id, "reason": str(exc)})
    summary = summarize(out, config.clicks)
    payload = {"config": asdict(config), "command": list(command), "summary": summary,
               "table": format_text_table(summary, config.clicks), **out}  # fmt: skip
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(payload, out_dir / "results.json")
    _plot(summary, config.clicks, out_dir / "text_dice.png")
    return payload


def _plot(summary: dict[str, Any], clicks: int, path: Path) -> None:
    """Bars per dataset: Dice from text alone and after each click."""
    from matplotlib.figure import Figure

    from medseg.bench.plots import save_figure

    names = [*summary["datasets"], "CT/MR", "all"]
    blocks = [*summary["datasets"].values(), summary["ct_mr"], summary["all"]]
    fig = Figure(figsize=(max(6.0, 0.9 * len(names)), 3.6))
    ax = fig.add_subplot()
    width = 0.8 / (clicks + 1)
    for k in range(clicks + 1):
        vals = [(b["dice_text"] if k == 0 else b["dice_clicks"][k - 1]) if b.get("targets")
                else 0.0 for b in blocks]  # fmt: skip
        ax.bar(np.arange(len(names)) + k * width, vals, width,
               label="text" if k == 0 else f"text + {k} click{'s' * (k > 1)}")  # fmt: skip
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean Dice")
    ax.legend(fontsize=8, ncols=clicks + 1)
    save_figure(fig, path)
