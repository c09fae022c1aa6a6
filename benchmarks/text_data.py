"""Cache LiteMedSAM image embeddings + label maps of the shared data for the text model.

    python benchmarks/text_data.py --data ../shared/data --out /work/cache/text \
        [--num-threads 2] [--limit N]

Every labelled 2D image and a bounded set of slices of the labelled 3D volumes (axial, and
coronal/sagittal for the volumes with >= 32 slices in those directions) is normalised and
oriented exactly as ``medseg.Predictor.set_image`` does (volume-wide window or percentiles;
slices in the app's radiological display views, ``frame="view"``, whatever axis order and
direction the file stores) and embedded once with LiteMedSAM (``(256, 64, 64)``, stored
float16 in ``embeddings.f16``, a memmap). The label map of each image is resized (nearest) into
LiteMedSAM's 256 x 256 model frame (``labels.npy``, uint8; instance maps become one class).
``samples.jsonl`` has one line per sample: dataset, case, view, slice, split
(``train`` / ``heldout`` = a left-out dataset / ``heldout_case``), modality code, the
label value -> name map and the resized size. Rerunning rebuilds the cache.

``--variants N`` adds N re-rendered copies of every slice of the volumes in
:data:`VARIANT_DATASETS` (meta ``render`` = 1..N, same label): a random CT window / MR
percentile range and gamma, quantised to 8 bits, as other datasets export their slices
(:func:`render_variant`), so the head does not key on one normalisation. ``--splits`` keeps
only those splits (the ``heldout`` datasets are never trained on). ``--flips`` adds, for
the same volumes, each axial slice mirrored up-down, left-right and both (meta ``flip``),
since other datasets export their slices turned from the radiological view.
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
VARIANT_DATASETS = ("totalseg_ref",)  # the CT/MR organ volumes
# --flips: mirrored copies of axial slices (other datasets export slices turned: anterior at
# the bottom, or the patient's left on the left); value = np.flip axes of a (rows, cols) slice
FLIPS = {"ud": (0,), "lr": (1,), "both": (0, 1)}


def render_variant(arr: np.ndarray, modality: str, rng: np.random.Generator) -> np.ndarray:
    """One random 8-bit-export-like rendering of a raw volume ``arr`` (any shape) in [0, 1].

    CT: window from U(-1024, -150) to U(200, 1600) HU; other modalities: percentiles
    U(0, 2) to U(97, 100). Then gamma (log-uniform 0.7..1.4) and rounding to 1/255."""
    a = np.asarray(arr, np.float32)
    if modality.upper() == "CT":
        lo, hi = rng.uniform(-1024, -150), rng.uniform(200, 1600)
    else:
        lo, hi = np.percentile(a, [rng.uniform(0, 2), rng.uniform(97, 100)])
        hi = max(float(hi), float(lo) + 1e-6)
    u = np.clip((a - lo) / (hi - lo), 0, 1) ** np.exp(rng.uniform(np.log(0.7), np.log(1.4)))
    return (np.round(u * 255) / 255).astype(np.float32)


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


def _views(img: object, steps: tuple[int, int]) -> Iterator[tuple[str, dict, int]]:
    """``(view, view_axes dict, slice)`` of a volume ``img`` (a :class:`medseg.io.Image`):
    every ``steps[0]``-th axial slice, and every ``steps[1]``-th coronal / sagittal slice
    for volumes with >= 32 slices that way and >= 16 axial ones. Views are the app's
    display views (:func:`medseg.io.orientation.view_axes`), the slices
    ``Predictor.set_image(frame="view")`` segments, not the array's storage order."""
    from medseg.io.orientation import VIEWS, view_axes

    axes = {v: view_axes(img, v) for v in VIEWS}  # type: ignore[arg-type]
    depth = {v: img.shape[a["depth"]] for v, a in axes.items()}  # type: ignore[attr-defined]
    yield from (("axial", axes["axial"], i) for i in range(0, depth["axial"], steps[0]))
    for v in ("coronal", "sagittal"):
        if depth[v] >= 32 and depth["axial"] >= 16:
            yield from ((v, axes[v], i) for i in range(steps[1] // 2, depth[v], steps[1]))


def _cut(vol: np.ndarray, ax: dict, i: int) -> np.ndarray:
    """Slice ``i`` ``(rows, cols)`` of the view ``ax`` of ``vol`` ``(Z, Y, X)``: as the app
    shows it (radiological: rows anterior->posterior / superior->inferior, columns patient
    right->left / anterior->posterior)."""
    from medseg.io.orientation import oriented

    return np.ascontiguousarray(oriented(vol, ax)[i])


def iter_samples(
    data: Path,
    datasets: Collection[str] | None = None,
    volume_steps: dict[str, tuple[int, int]] | None = None,
    variants: int = 0,
    splits: Collection[str] | None = None,
    seed: int = 0,
    flips: bool = False,
) -> Iterator[tuple[dict, np.ndarray, np.ndarray]]:
    """(meta, normalised 2D image, 2D label) for every sample of the cache.

    ``datasets`` keeps only those dataset names (default: all); ``volume_steps`` replaces
    :data:`VOLUME_STEPS` (volume -> (axial step, other-view step)); ``variants`` re-rendered
    copies per slice of :data:`VARIANT_DATASETS` (training split only; ``flips``: also
    their axial slices mirrored, :data:`FLIPS`); ``splits`` keeps only those splits."""
    from medseg.inference.image_input import guess_modality, model_array
    from medseg.io import load, load_label
    from medseg.io.intensity import display_window

    rng = np.random.default_rng(seed)
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
            if splits is not None and split not in splits:
                continue
            names = case.get("label_names") or ds["label_names"]
            meta = {"dataset": ds["name"], "case": case["id"], "split": split,
                    "modality": _modality(ds, case), "task": ds["task"],
                    "label_names": {k: v for k, v in names.items() if k != "0"}}  # fmt: skip
            channels = case["images"][: 2 if ds["name"] == "brats2015_deepmedic" else 1]
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
                extra = ds["name"] in VARIANT_DATASETS and split == "train"
                renders = [unit] + [render_variant(arr, mod, rng) for _ in range(variants * extra)]
                for m2, u2, l2 in _slices(ds["name"], img, renders, lab, steps, flips and extra):
                    yield {**meta, **m2, "channel": ci}, u2, l2


def _slices(
    name: str,
    img: object,
    renders: list[np.ndarray],
    lab: np.ndarray,
    steps: tuple[int, int],
    flips: bool,
) -> Iterator[tuple[dict, np.ndarray, np.ndarray]]:
    """``(view / slice / render [/ flip] meta, image (rows, cols), label (rows, cols))`` of
    the :func:`_views` slices of one volume ``img`` (``renders``: its normalised arrays
    ``(Z, Y, X)``, the first the Predictor's); ``flips``: also the :data:`FLIPS` of every
    axial slice of the first render (image and label flipped alike)."""
    for view, ax, i in _views(img, steps):
        l2 = _cut(lab, ax, i)
        for r, vol in enumerate(renders):
            u2 = _cut(vol, ax, i)
            if name == "brats2015_deepmedic" and float(np.ptp(u2)) < 1e-3:
                continue  # empty slice outside the head
            m2 = {"view": view, "slice": int(i), "render": r}
            yield m2, u2, l2
            if flips and view == "axial" and r == 0:
                for f, axes in FLIPS.items():
                    yield {**m2, "flip": f}, np.flip(u2, axes).copy(), np.flip(l2, axes).copy()


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
    ap.add_argument("--variants", type=int, default=0, help="re-rendered copies per volume slice")
    ap.add_argument("--splits", default=None, help="keep only these splits (comma-separated)")
    ap.add_argument("--flips", action="store_true", help="mirrored copies of axial slices")
    ap.add_argument("--steps", default=None, help="volume steps, e.g. brats2015_deepmedic=32:60")
    args = ap.parse_args()
    steps = dict(VOLUME_STEPS)
    for item in (args.steps or "").split(","):
        if item:
            name, st = item.split("=")
            steps[name] = tuple(int(x) for x in st.split(":"))  # type: ignore[assignment]
    select = {"variants": args.variants, "volume_steps": steps, "flips": args.flips,
              "splits": args.splits and args.splits.split(",")}  # fmt: skip
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.count:
        from collections import Counter

        c = Counter((m["dataset"], m["split"]) for m, _, _ in iter_samples(args.data, **select))
        for k, v in sorted(c.items()):
            log.info("%s %s: %d", *k, v)
        log.info("total %d", sum(c.values()))
        return
    build_cache(args.data, args.out, args.num_threads, args.limit, **select)


if __name__ == "__main__":
    main()
