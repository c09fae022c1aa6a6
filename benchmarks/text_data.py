"""Cache LiteMedSAM image embeddings + label maps of the shared data for the text model.

    python benchmarks/text_data.py --data ../shared/data --out /work/cache/text \
        [--num-threads 2] [--limit N]

Every labelled 2D image and a bounded set of slices of the labelled 3D volumes (axial, and
coronal/sagittal for the volumes with >= 32 slices in those directions, flipped so superior
is up) is normalised exactly as ``medseg.Predictor.set_image`` does (volume-wide window or
percentiles) and embedded once with LiteMedSAM (``(256, 64, 64)``, stored float16 in
``embeddings.f16``, a memmap). The label map of each image is resized (nearest) into
LiteMedSAM's 256 x 256 model frame (``labels.npy``, uint8; instance maps become one class).
``samples.jsonl`` has one line per sample: dataset, case, view, slice, split
(``train`` / ``heldout`` = a left-out dataset / ``heldout_case``), modality code, the
label value -> name map and the resized size. Rerunning rebuilds the cache.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Collection, Iterator
from pathlib import Path

import numpy as np

log = logging.getLogger("text_data")

# Datasets never used for training (the headline evaluation), and one held-out case.
HELDOUT = ("sammed2d_demo", "cxr_lung_demo", "msd_spleen_ct_slices", "pansegdata_pancreas_t2_mr",
           "cvc_colondb_polyp", "isic2017_skin_lesion", "hrf_retina_vessels")  # fmt: skip
HELDOUT_CASES = (("totalseg_ref", "example_ct_dicom"),)
SKIP = ("pydicom_samples", "pyradiomics_data", "monai_testing_data")  # generic ROIs only
# Volume -> (axial step, other-view step, channels used)
VOLUME_STEPS = {"brats2015_deepmedic": (16, 30), "mricron_atlas": (8, 8), "totalseg_ref": (1, 3),
                "sct_spinalcord_mr": (4, 8)}  # fmt: skip
SIZE = 256


def _modality(ds: dict, case: dict) -> str:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from build_text_vocabulary import CASE_MODALITY, DATASET_MODALITY

    return CASE_MODALITY.get((ds["name"], case["id"]), DATASET_MODALITY[ds["name"]])


def model_frame(label: np.ndarray, resized: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a ``(H, W)`` label map to ``resized`` ``(h, w)``, padded with 0
    at the bottom/right to ``(256, 256)`` uint8 (LiteMedSAM's model frame)."""
    h, w = label.shape
    rows = np.minimum((np.arange(resized[0]) + 0.5) * h / resized[0], h - 1).astype(int)
    cols = np.minimum((np.arange(resized[1]) + 0.5) * w / resized[1], w - 1).astype(int)
    out = np.zeros((SIZE, SIZE), np.uint8)
    out[: resized[0], : resized[1]] = label[rows][:, cols]
    return out


def _views(depth_shape: tuple[int, int, int], steps: tuple[int, int]) -> Iterator[tuple[str, int]]:
    z, y, x = depth_shape
    yield from (("axial", i) for i in range(0, z, steps[0]))
    if y >= 32 and z >= 16:
        yield from (("coronal", i) for i in range(steps[1] // 2, y, steps[1]))
    if x >= 32 and z >= 16:
        yield from (("sagittal", i) for i in range(steps[1] // 2, x, steps[1]))


def _cut(vol: np.ndarray, view: str, i: int) -> np.ndarray:
    if view == "axial":
        return vol[i]
    s = vol[:, i] if view == "coronal" else vol[:, :, i]
    return s[::-1]  # superior up (z grows superior in LPS/RAS)


def iter_samples(
    data: Path,
    datasets: Collection[str] | None = None,
    volume_steps: dict[str, tuple[int, int]] | None = None,
) -> Iterator[tuple[dict, np.ndarray, np.ndarray]]:
    """(meta, normalised 2D image, 2D label) for every sample of the cache.

    ``datasets`` keeps only those dataset names (default: all); ``volume_steps`` replaces
    :data:`VOLUME_STEPS` (volume -> (axial step, other-view step))."""
    from medseg.inference.image_input import guess_modality, model_array
    from medseg.io import load, load_label
    from medseg.io.intensity import display_window

    manifest = json.loads((data / "manifest.json").read_text())
    for ds in manifest["datasets"]:
        if ds["dims"] is None or ds["name"] in SKIP:
            continue
        if datasets is not None and ds["name"] not in datasets:
            continue
        for case in ds["cases"]:
            if case["label"] is None:
                continue
            split = "heldout" if ds["name"] in HELDOUT else "train"
            if (ds["name"], case["id"]) in HELDOUT_CASES:
                split = "heldout_case"
            names = case.get("label_names") or ds["label_names"]
            meta = {"dataset": ds["name"], "case": case["id"], "split": split,
                    "modality": _modality(ds, case), "task": ds["task"],
                    "label_names": {k: v for k, v in names.items() if k != "0"}}  # fmt: skip
            channels = (
                case["images"][:2] if ds["name"] == "brats2015_deepmedic" else case["images"][:1]
            )
            lab = load_label(data / case["label"]).array
            if ds["task"] == "instance":
                lab = (lab > 0).astype(np.uint8)
            for ci, path in enumerate(channels):
                img = load(data / path)
                arr = model_array(img, first_channel=True)
                mod = guess_modality(img, arr)
                unit = display_window(arr, modality=mod)
                if ds["dims"] == 2:
                    yield {**meta, "view": "2d", "slice": None, "channel": ci}, unit, lab
                    continue
                steps = (volume_steps or VOLUME_STEPS).get(ds["name"], (4, 8))
                if split == "heldout_case":
                    steps = (steps[0], 10**6)  # axial only
                if ci > 0:
                    steps = (steps[0] * 2, 10**6)  # second channel: fewer axial slices only
                for view, i in _views(unit.shape, steps):
                    u2, l2 = _cut(unit, view, i), _cut(lab, view, i)
                    if ds["name"] == "brats2015_deepmedic" and float(u2.max() - u2.min()) < 1e-3:
                        continue  # empty slice outside the head
                    yield {**meta, "view": view, "slice": int(i), "channel": ci}, u2, l2


def build_cache(
    data: Path, out: Path, num_threads: int, limit: int | None, **select: object
) -> int:
    """Embed every sample of :func:`iter_samples` into ``out``; returns the sample count.

    ``select`` (``datasets=``, ``volume_steps=``) is passed to :func:`iter_samples`."""
    from medseg.models.registry import create_model

    model = create_model("litemedsam", num_threads=num_threads)
    out.mkdir(parents=True, exist_ok=True)
    cap = limit or 4000
    emb = np.lib.format.open_memmap(out / "embeddings.npy", "w+", np.float16, (cap, 256, 64, 64))
    labels = np.zeros((cap, SIZE, SIZE), np.uint8)
    n, t0 = 0, time.time()
    with open(out / "samples.jsonl", "w") as fh:
        for meta, unit, lab in iter_samples(data, **select):  # type: ignore[arg-type]
            if n >= cap:
                break
            e = model.encode(unit)
            emb[n] = e.features[0].numpy().astype(np.float16)
            labels[n] = model_frame(np.asarray(lab), e.resized_size)
            meta = {**meta, "index": n, "resized": list(e.resized_size),
                    "shape": list(unit.shape[:2])}  # fmt: skip
            fh.write(json.dumps(meta) + "\n")
            n += 1
            if n % 50 == 0:
                log.info("%d samples, %.0f s", n, time.time() - t0)
    emb.flush()
    np.save(out / "labels.npy", labels[:n])
    (out / "count.txt").write_text(str(n))
    log.info("%d samples in %.0f s -> %s", n, time.time() - t0, out)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("/work/cache/text"))
    ap.add_argument("--num-threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--count", action="store_true", help="only count the samples")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.count:
        from collections import Counter

        c = Counter((m["dataset"], m["split"]) for m, _, _ in iter_samples(args.data))
        for k, v in sorted(c.items()):
            log.info("%s %s: %d", *k, v)
        log.info("total %d", sum(c.values()))
        return
    build_cache(args.data, args.out, args.num_threads, args.limit)


if __name__ == "__main__":
    main()
