"""Build the text head's body-relative anatomical prior (``medseg.models.text_prior``).

    python benchmarks/build_text_prior.py --data ../shared/data \
        --out src/medseg/assets/text_prior.json [--cases totalseg_ref/example_ct_sm,...]

Every axial slice of the labelled CT/MR volumes of the text head's training datasets (region
"body" in ``medseg.bench.text.DATASET_REGION``, none of ``HELDOUT`` in ``text_data.py``) is
normalised as ``medseg.Predictor.set_image`` does, turned into the radiological axial view
(``medseg.io.orientation``), and its body box found (``text_prior.body_box``). For every
vocabulary target labelled in the slice (>= ``MIN_PIXELS`` pixels; lesions are skipped:
their place is not anatomy) the target's box in body coordinates is recorded. Per target
the boxes are reduced to at most ``K`` representatives (k-means, seeded; ``K`` = 1, the mean
box: each candidate costs one LiteMedSAM decoder pass at prediction) and written with
the slice count to a small JSON file; a two-sided target ("kidney") is listed under
``sides`` as its left and right targets (answered as their union, not one wide box).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from text_data import HELDOUT

log = logging.getLogger("build_text_prior")

MIN_PIXELS = 20
K = 1
LESION_WORDS = ("tumor", "lesion", "carcinoma", "cyst", "edema", "necrosis", "enhancing")


def volume_cases(data: Path) -> list[tuple[str, str, str, str]]:
    """``(dataset, case, image path, label path)`` of the training CT/MR body volumes."""
    from medseg.bench.text import DATASET_REGION

    manifest = json.loads((data / "manifest.json").read_text())
    out = []
    for ds in manifest["datasets"]:
        if ds["dims"] != 3 or ds["name"] in HELDOUT or DATASET_REGION.get(ds["name"]) != "body":
            continue
        for case in ds["cases"]:
            if case["label"]:
                out.append((ds["name"], case["id"], case["images"][0], case["label"]))
    return out


def slice_boxes(data: Path, dataset: str, case: str, image: str, label: str,
                targets: list) -> dict[str, list[list[float]]]:  # fmt: skip
    """Per target id, the body-coordinate boxes of its labelled axial slices."""
    from medseg.inference.image_input import guess_modality, model_array
    from medseg.io import load, load_label
    from medseg.io.intensity import display_window
    from medseg.io.orientation import oriented, view_axes
    from medseg.models.text_prior import body_box, normalise_box

    img = load(data / image)
    arr = model_array(img, first_channel=True)
    unit = display_window(arr, modality=guess_modality(img, arr))
    lab = load_label(data / label).array
    ax = view_axes(img, "axial")
    unit_v, lab_v = oriented(unit, ax), oriented(lab, ax)
    manifest = json.loads((data / "manifest.json").read_text())
    ds = next(d for d in manifest["datasets"] if d["name"] == dataset)
    c = next(c for c in ds["cases"] if c["id"] == case)
    names = {int(k): v for k, v in (c.get("label_names") or ds["label_names"]).items()}
    out: dict[str, list[list[float]]] = {}
    for i in range(unit_v.shape[0]):
        body = body_box(np.ascontiguousarray(unit_v[i]))
        if body is None:
            continue
        here = lab_v[i]
        for t in targets:
            wanted = set(t.labels.get(dataset, ()))
            values = [v for v, n in names.items() if n in wanted]
            m = np.isin(here, values) if values else None
            if m is None or m.sum() < MIN_PIXELS:
                continue
            ys, xs = np.nonzero(m)
            box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            out.setdefault(t.id, []).append([round(v, 4) for v in normalise_box(box, body)])
    log.info("%s/%s: %d slices, %d targets", dataset, case, unit_v.shape[0], len(out))
    return out


def representatives(boxes: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """At most ``k`` k-means centres ``(k, 4)`` of ``boxes`` ``(N, 4)`` (20 iterations)."""
    k = max(1, min(k, len(boxes) // 3 or 1))
    rng = np.random.default_rng(seed)
    centres = boxes[rng.choice(len(boxes), k, replace=False)]
    for _ in range(20):
        d = ((boxes[:, None] - centres[None]) ** 2).sum(-1)
        near = d.argmin(1)
        centres = np.stack([boxes[near == j].mean(0) if (near == j).any() else centres[j]
                            for j in range(k)])  # fmt: skip
    return centres


def build(data: Path, cases: list[str] | None) -> dict:
    """The prior document (see ``medseg.models.text_prior.AnatomyPrior``)."""
    from medseg.models.text_prior import PRIOR_FORMAT
    from medseg.prompts.text import load_vocabulary

    vocab = load_vocabulary()
    targets = [t for t in vocab.targets.values()
               if not t.generic and not any(w in t.name for w in LESION_WORDS)]  # fmt: skip
    found: dict[str, list[list[float]]] = {}
    used = []
    for ds, case, image, label in volume_cases(data):
        if cases is not None and f"{ds}/{case}" not in cases:
            continue
        used.append(f"{ds}/{case}")
        for tid, boxes in slice_boxes(data, ds, case, image, label, targets).items():
            found.setdefault(tid, []).extend(boxes)
    sides: dict[str, list[str]] = {}
    for t in vocab.targets.values():
        if t.side_rule == "midline" and t.base and t.id in found:
            sides.setdefault(t.base, []).append(t.id)
    entries = {}
    for tid in sorted(found):
        b = np.asarray(found[tid], np.float64)
        reps = representatives(b, K)
        entries[tid] = {"slices": len(b), "boxes": np.round(reps, 4).tolist()}
    info = {"cases": used, "frame": "axial, radiological (rows A->P, cols R->L)"}
    sided = {k: sorted(v) for k, v in sorted(sides.items())}
    return {"format": PRIOR_FORMAT, "version": 1, "min_score": 0.0, "info": info,
            "targets": entries, "sides": sided}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("src/medseg/assets/text_prior.json"))
    ap.add_argument("--cases", default=None, help="comma-separated dataset/case to use")
    ap.add_argument("--min-score", type=float, default=None, help="score gate to store")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    doc = build(args.data, args.cases.split(",") if args.cases else None)
    if args.min_score is not None:
        doc["min_score"] = args.min_score
    args.out.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    log.info("%d targets -> %s", len(doc["targets"]), args.out)


if __name__ == "__main__":
    main()
