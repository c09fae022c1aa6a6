"""LiteMedSAM baseline on the 2D sets of ``../shared/data``: Dice for box prompts (tight and
jittered), a one-click point prompt and a box + mask-input refinement, plus encoder (PyTorch
vs ONNX Runtime) and decoder latency.

    .venv/bin/python benchmarks/litemedsam_2d.py --data ../shared/data \
        --out benchmarks/results/litemedsam_2d.json

Targets: every class of a semantic label map, every instance of an instance map (the
``--max-instances`` largest per image); targets under ``--min-area`` pixels are skipped.
Jittered boxes move each side by up to ``--jitter`` (10 %) of the box width/height, uniformly,
with a fixed seed. The point prompt is one foreground click at the target pixel farthest from
its border (distance transform maximum). ``--max-images`` subsamples each dataset (first N
ids in sorted order) to keep the run short. Prints a Markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_info import run_metadata

import medseg.io as mio
from medseg.inference.predictor import Predictor
from medseg.metrics import dice
from medseg.models.litemedsam import preprocess
from medseg.prompts import box_from_mask

log = logging.getLogger("benchmarks.litemedsam_2d")

PROMPTS = ("box", "box_jitter", "point", "box_refine")


def targets(label: np.ndarray, task: str, max_instances: int, min_area: int) -> list[np.ndarray]:
    """Boolean masks: one per class (semantic) or per instance (largest ``max_instances``)."""
    values, counts = np.unique(label[label > 0], return_counts=True)
    keep = [(int(v), int(c)) for v, c in zip(values, counts, strict=True) if c >= min_area]
    if task == "instance":
        keep = sorted(keep, key=lambda vc: -vc[1])[:max_instances]
    return [label == v for v, _ in keep]


def jitter(box: tuple[int, ...], shape: tuple[int, int], frac: float, rng) -> tuple[float, ...]:
    """Move each side by ``U(-frac, frac)`` of the box size, clipped to the image."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0 + 1, y1 - y0 + 1
    d = rng.uniform(-frac, frac, 4) * np.array([w, h, w, h])
    nx0, ny0 = max(0.0, x0 + d[0]), max(0.0, y0 + d[1])
    nx1, ny1 = min(shape[1] - 1.0, x1 + d[2]), min(shape[0] - 1.0, y1 + d[3])
    if nx1 - nx0 < 1 or ny1 - ny0 < 1:  # jitter collapsed a thin box: keep the tight one
        return tuple(float(v) for v in box)
    return (nx0, ny0, nx1, ny1)


def interior_point(mask: np.ndarray) -> tuple[float, float]:
    """``(x, y)`` of the mask pixel farthest from the background."""
    dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), mask.shape)
    return float(x), float(y)


def run_case(p: Predictor, image: Any, masks: list[np.ndarray], args, rng) -> dict[str, list]:
    """Dice per prompt kind for the targets of one image (boxes decoded in one pass)."""
    p.set_image(image)
    shape = masks[0].shape
    tight = [box_from_mask(m) for m in masks]
    jittered = [jitter(b, shape, args.jitter, rng) for b in tight]
    out: dict[str, list] = {k: [] for k in PROMPTS}
    r_tight = p.predict(boxes=tight)
    r_jit = p.predict(boxes=jittered)
    for i, m in enumerate(masks):
        out["box"].append(dice(r_tight.mask[i], m))
        out["box_jitter"].append(dice(r_jit.mask[i], m))
        pt = p.predict(points=[interior_point(m)])
        out["point"].append(dice(pt.mask, m))
        refined = p.predict(box=jittered[i], mask_input=r_jit.logits[i])
        out["box_refine"].append(dice(refined.mask, m))
    return out


def _timed(fn: Any) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call; CPU time is less distorted than wall
    time when other processes share the cores."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def decoder_latency(p: Predictor, box: tuple[int, ...], repeats: int) -> list[tuple]:
    """Per single-box ``predict`` (prompt encoder + decoder + resize to the image)."""
    return [_timed(lambda: p.predict(box=box)) for _ in range(repeats)]


def encoder_latency(model: Any, images: list[np.ndarray]) -> dict[str, list[tuple]]:
    """Per encoder run, PyTorch and ONNX Runtime on the same preprocessed inputs."""
    times: dict[str, list[tuple]] = {"torch": [], "onnx": []}
    backend = model.encoder_backend
    for unit in images:
        x, _ = preprocess(unit)
        for name in ("torch", "onnx"):
            model.encoder_backend = name
            model.encode_tensor(x)  # warm-up (first ONNX call, allocator)
            times[name].append(_timed(functools.partial(model.encode_tensor, x)))
    model.encoder_backend = backend
    return times


def _cases(root: Path, ds: dict, limit: int) -> list[dict]:
    cases = sorted((c for c in ds["cases"] if c["label"]), key=lambda c: c["id"])
    return cases[:limit] if limit else cases


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    manifest = json.loads((args.data / "manifest.json").read_text())
    p = Predictor("litemedsam", backend="onnx", num_threads=args.threads, progress=False)
    rng = np.random.default_rng(args.seed)
    per_ds: dict[str, dict] = {}
    dec_times: list[tuple] = []
    enc_inputs: list[np.ndarray] = []
    datasets = [d for d in manifest["datasets"] if d["dims"] == 2 and d["task"] != "none"]
    for ds in datasets:
        scores: dict[str, list] = {k: [] for k in PROMPTS}
        cases = _cases(args.data, ds, args.max_images)
        for case in tqdm(cases, desc=ds["name"], unit="image"):
            image = mio.load(args.data / case["images"][0])
            label = mio.load_label(args.data / case["label"]).array
            masks = targets(label, ds["task"], args.max_instances, args.min_area)
            if not masks:
                continue
            if args.latency_only:
                p.set_image(image)
            else:
                for k, v in run_case(p, image, masks, args, rng).items():
                    scores[k].extend(v)
            dec_times += decoder_latency(p, box_from_mask(masks[0]), args.decoder_repeats)
            if len(enc_inputs) < args.encoder_images:
                enc_inputs.append(p.model.normalize(image.array, modality=image.modality))
        if args.latency_only:
            continue
        per_ds[ds["name"]] = {
            "images": len(cases),
            "targets": len(scores["box"]),
            **{k: float(np.mean(v)) for k, v in scores.items()},
            "_all": scores,
        }
    enc = encoder_latency(p.model, enc_inputs)
    return summarize(per_ds, enc, dec_times, args)


def _median(times: list[tuple], i: int) -> float:
    return statistics.median(t[i] for t in times)


def summarize(per_ds: dict, enc: dict, dec: list[tuple], args) -> dict[str, Any]:
    overall = {k: [s for d in per_ds.values() for s in d["_all"][k]] for k in PROMPTS}
    overall = {k: v or [float("nan")] for k, v in overall.items()}  # --latency-only
    for d in per_ds.values():
        d.pop("_all")
    lat = {}
    for i, kind in enumerate(("wall", "cpu")):
        t_torch, t_onnx = _median(enc["torch"], i), _median(enc["onnx"], i)
        lat[kind] = {
            "encoder_torch_median": t_torch,
            "encoder_onnx_median": t_onnx,
            "encoder_speedup_onnx": t_torch / t_onnx,
            "decoder_median": _median(dec, i),
        }
    lat["encoder_runs_each"], lat["decoder_runs"] = len(enc["torch"]), len(dec)
    return {
        "model": "litemedsam",
        **run_metadata(args),
        "datasets": per_ds,
        "overall": {
            "targets": len(overall["box"]),
            **{k: float(np.mean(v)) for k, v in overall.items()},
            "dataset_mean": {
                k: float(np.mean([d[k] for d in per_ds.values()] or [np.nan])) for k in PROMPTS
            },
        },
        "latency_s": lat,
    }


def markdown(res: dict[str, Any]) -> str:
    head = "| dataset | images | targets | box | box ±10 % | 1 click | jittered box + mask |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    rows = [*res["datasets"].items(), ("**all targets**", res["overall"])]
    for name, d in rows:
        images = d.get("images", sum(x["images"] for x in res["datasets"].values()))
        vals = " | ".join(f"{d[k]:.3f}" for k in PROMPTS)
        lines.append(f"| {name} | {images} | {d['targets']} | {vals} |")
    dm = res["overall"]["dataset_mean"]
    lines.append(
        "| **mean of datasets** | | | " + " | ".join(f"{dm[k]:.3f}" for k in PROMPTS) + " |"
    )
    lat = res["latency_s"]
    lines += ["", "| median latency | encoder PyTorch | encoder ONNX | ONNX speed-up | decoder |"]
    lines.append("|---|---|---|---|---|")
    for kind in ("wall", "cpu"):
        t = lat[kind]
        lines.append(
            f"| {kind} time | {t['encoder_torch_median']:.3f} s | "
            f"{t['encoder_onnx_median']:.3f} s | x{t['encoder_speedup_onnx']:.2f} | "
            f"{1000 * t['decoder_median']:.0f} ms |"
        )
    lines.append(
        f"\n{lat['encoder_runs_each']} images per encoder, {lat['decoder_runs']} decoder runs; "
        f"load average {res['machine']['load_average_1_5_15']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/litemedsam_2d.json"))
    parser.add_argument("--max-images", type=int, default=10, help="per dataset, 0 = all")
    parser.add_argument("--max-instances", type=int, default=20)
    parser.add_argument("--min-area", type=int, default=16)
    parser.add_argument("--jitter", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--encoder-images", type=int, default=8)
    parser.add_argument("--decoder-repeats", type=int, default=3)
    parser.add_argument("--latency-only", action="store_true", help="skip the Dice part")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()
    res = run(args)
    res["wall_s"] = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    print(markdown(res))
    print(f"\nwall time {res['wall_s']:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
