"""LiteMedSAM image-encoder backends compared in one run: PyTorch, fp32 ONNX, int8 ONNX.

    nice -n 10 .venv/bin/python benchmarks/encoder_backends.py --data ../shared/data \
        --threads 1 --repeats 5 --limit 3 --max-targets 2 \
        --volume ../shared/data/totalseg_ref --out benchmarks/results/encoder_backends.json

1. Latency: the first readable case of each dataset (default: the 8 unseen 2D sets), read
   with medseg's bench loader (:func:`medseg.bench.data.load_pair`). ``--repeats`` rounds;
   in each, every image goes to every backend, the backend order rotating per image and
   round, so machine load hits all backends alike. Each Predictor keeps one embedding
   (``cache_size=1``) and consecutive images differ, so every ``set_image`` runs the
   encoder (checked with ``cache_info``). Reported: p50 of ``set_image`` (wall and process
   CPU time) and of one box ``predict`` (prompt encoder + decoder), and each backend's
   time as a ratio to PyTorch's in the same run.
2. Box Dice: the first ``--limit`` cases of each dataset, at most ``--max-targets`` targets
   per case (the seeded sample of ``medseg bench``, :func:`medseg.bench.data.plan_case`),
   the exact box from the reference mask (``simulate_box`` with no jitter, as ``medseg
   bench --protocol box``); mean Dice per backend and the per-target drop against fp32 ONNX.
3. ``--volume FOLDER``: 3D from a box on each target's largest axial slice propagated
   through the volume, as ``benchmarks/propagation_3d.py --clicks 0`` (its own functions),
   a fresh embedding cache per target and backend; seconds per object and 3D Dice.

Writes JSON (``--out``) and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_info import run_metadata

import medseg
from medseg.bench.data import (
    TargetSpec,
    discover,
    load_pair,
    materialize,
    plan_case,
    slice_image,
)
from medseg.bench.runner import target_rng
from medseg.errors import MedsegError
from medseg.metrics import dice
from medseg.prompts.simulation.clicks import simulate_box

log = logging.getLogger("benchmarks.encoder_backends")

BACKENDS = ("torch", "onnx", "onnx-int8")
UNSEEN_2D = (
    "busi_breast_us",
    "hc18_fetal_head_us",
    "jsrt_scr_cxr",
    "glas_colon_glands",
    "cvc_colondb_polyp",
    "tg3k_thyroid_us",
    "drive_retina_vessels",
    "npc_nasopharynx_t2_mr",
)
# criteria for recommending int8 as the "auto" backend (the coordinator decides)
MAX_MEAN_DROP, MAX_TARGET_DROP, MIN_SPEEDUP = 0.005, 0.05, 1.3


def _predictors(backends: tuple[str, ...], threads: int) -> dict[str, medseg.Predictor]:
    return {
        b: medseg.Predictor(
            "litemedsam", backend=b, num_threads=threads, cache_size=1, progress=False
        )
        for b in backends
    }


def _first_cases(data: Path, names: list[str]) -> list[tuple[str, Any, np.ndarray]]:
    """``(dataset, image, box)`` of the first readable case of each dataset; the box is the
    tight box of the case's largest label value."""
    out = []
    for name in names:
        ds = discover(data / name)
        for case in ds.cases:
            try:
                image, label = load_pair(ds, case)
            except MedsegError as exc:
                log.info("%s/%s skipped: %s", name, case.case_id, exc)
                continue
            values, counts = np.unique(label.array[label.array > 0], return_counts=True)
            mask = label.array == values[np.argmax(counts)]
            if mask.ndim == 3:  # a volume: its slice with the most target pixels
                z = int(np.argmax(mask.sum(axis=(1, 2))))
                image, mask = slice_image(image, z), mask[z]
            out.append((f"{name}/{case.case_id}", image, simulate_box(mask)))
            break
    return out


def _timed(fn: Any) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def latency(preds: dict[str, medseg.Predictor], cases: list, repeats: int) -> dict[str, Any]:
    """p50 ``set_image`` / ``predict`` seconds per backend, interleaved round-robin."""
    names = list(preds)
    if len(cases) < 2:
        raise SystemExit("latency needs >= 2 images (one cached embedding per Predictor)")
    for p in preds.values():  # warm-up: ONNX sessions, export/quantization, allocators;
        p.set_image(cases[0][1])  # the last image then cached, so round 1 starts on a miss
        p.set_image(cases[-1][1])
    times: dict[str, dict[str, list]] = {b: {"set_image": [], "predict": []} for b in names}
    misses0 = {b: p.cache_info().misses for b, p in preds.items()}
    for r in range(repeats):
        for i, (_, image, box) in enumerate(cases):
            k = (r * len(cases) + i) % len(names)
            for b in names[k:] + names[:k]:
                p = preds[b]
                times[b]["set_image"].append(_timed(lambda p=p, im=image: p.set_image(im)))
                times[b]["predict"].append(_timed(lambda p=p, bx=box: p.predict(box=bx)))
    runs = repeats * len(cases)
    out: dict[str, Any] = {}
    for b, p in preds.items():
        if p.cache_info().misses - misses0[b] != runs:
            raise RuntimeError(f"{b}: set_image hit the embedding cache; timings invalid")
        out[b] = {
            f"{what}_{kind}_p50_s": statistics.median(t[j] for t in times[b][what])
            for what in ("set_image", "predict")
            for j, kind in enumerate(("wall", "cpu"))
        }
        out[b]["encoder_backend"] = p.model.encoder_backend
    for b in names:
        for key in ("set_image_wall", "set_image_cpu", "predict_wall"):
            ref = out["torch"][f"{key}_p50_s"] if "torch" in out else float("nan")
            out[b][f"{key}_ratio_to_torch"] = out[b][f"{key}_p50_s"] / ref
    out["runs_each"] = runs
    return out


def box_dice(preds: dict[str, medseg.Predictor], args: argparse.Namespace) -> list[dict]:
    """One row per target: the tight box and each backend's Dice."""
    rows = []
    for name in args.datasets:
        ds = discover(args.data / name)
        for case in ds.cases[: args.limit]:
            try:
                image, label = load_pair(ds, case)
            except MedsegError as exc:
                log.info("%s/%s skipped: %s", name, case.case_id, exc)
                continue
            spec0 = TargetSpec(ds.name, case.case_id, "", 0, None, None, None, 0)
            specs, _ = plan_case(
                ds,
                label,
                case.case_id,
                max_targets=args.max_targets,
                rng=target_rng(args.seed, spec0),
            )
            for target in materialize(image, label, specs):
                box = simulate_box(target.mask)
                row = {
                    "dataset": ds.name,
                    "case": case.case_id,
                    "target": target.spec.target_id,
                    "box": list(box),
                }
                for b, p in preds.items():
                    p.set_image(target.image)  # a cache hit for the case's next targets
                    row[b] = float(dice(p.predict(box=box).mask, target.mask))
                rows.append(row)
                log.info(
                    "%s/%s %s: %s",
                    name,
                    case.case_id,
                    target.spec.target_id,
                    " ".join(f"{b} {row[b]:.4f}" for b in preds),
                )
    return rows


def volume_3d(preds: dict[str, medseg.Predictor], args: argparse.Namespace) -> list[dict]:
    """3D Dice and seconds per object (``propagation_3d.py --clicks 0``) per backend."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from propagation_3d import _run_target, _targets

    rows = []
    for folder in args.volume:
        ds = discover(folder)
        for case in ds.cases[: args.volume_limit]:
            try:
                image, label = load_pair(ds, case)
            except MedsegError as exc:
                log.info("%s/%s skipped: %s", ds.name, case.case_id, exc)
                continue
            values = _targets(label.array, args.volume_max_targets, args.min_voxels)
            for i, value in enumerate(values):
                target = label.array == value
                k = i % len(preds)
                for b in list(preds)[k:] + list(preds)[:k]:
                    fresh = medseg.Predictor(preds[b].model, progress=False)  # empty cache
                    d, s, _ = _run_target(fresh, image, target, 0)
                    rows.append(
                        {
                            "dataset": ds.name,
                            "case": case.case_id,
                            "label": value,
                            "backend": b,
                            "dice": d[0],
                            "seconds": s,
                        }
                    )
                    log.info(
                        "3D %s/%s label %d %s: Dice %.4f, %.1f s",
                        ds.name,
                        case.case_id,
                        value,
                        b,
                        d[0],
                        s,
                    )
    return rows


def summarize(lat: dict, rows: list[dict], rows3d: list[dict], backends) -> dict[str, Any]:
    """Means, drops against fp32 ONNX and the int8-as-auto criteria."""
    quality: dict[str, Any] = {"targets": len(rows)}
    for b in backends:
        quality[b] = {"mean_dice": float(np.mean([r[b] for r in rows]))}
        for name in sorted({r["dataset"] for r in rows}):
            sel = [r[b] for r in rows if r["dataset"] == name]
            quality[b].setdefault("per_dataset", {})[name] = float(np.mean(sel))
        if "onnx" in backends and b != "onnx":
            drops = [r["onnx"] - r[b] for r in rows]
            quality[b]["mean_drop_vs_onnx"] = float(np.mean(drops))
            quality[b]["max_target_drop_vs_onnx"] = float(np.max(drops))
    out: dict[str, Any] = {"latency": lat, "box_quality": quality}
    if "onnx-int8" in backends and "onnx" in backends:
        q, speedup = (
            quality["onnx-int8"],
            (lat["onnx"]["set_image_wall_p50_s"] / lat["onnx-int8"]["set_image_wall_p50_s"]),
        )
        out["int8_vs_fp32_onnx"] = {
            "set_image_speedup": speedup,
            "meets_auto_criteria": bool(
                q["mean_drop_vs_onnx"] <= MAX_MEAN_DROP
                and q["max_target_drop_vs_onnx"] <= MAX_TARGET_DROP
                and speedup >= MIN_SPEEDUP
            ),
            "criteria": {
                "max_mean_drop": MAX_MEAN_DROP,
                "max_target_drop": MAX_TARGET_DROP,
                "min_speedup": MIN_SPEEDUP,
            },
        }
    if rows3d:
        out["volume_3d"] = {
            b: {
                "mean_dice": float(np.mean([r["dice"] for r in rows3d if r["backend"] == b])),
                "median_s_per_object": statistics.median(
                    r["seconds"] for r in rows3d if r["backend"] == b
                ),
                "objects": sum(r["backend"] == b for r in rows3d),
            }
            for b in backends
        }
    return out


def markdown(res: dict[str, Any], backends) -> str:
    lat, q = res["latency"], res["box_quality"]
    lines = [
        "| backend | set_image p50 (wall) | ratio to torch | set_image p50 (CPU) | "
        f"predict p50 | box Dice ({q['targets']} targets) | max drop vs onnx |",
        "|---|---|---|---|---|---|---|",
    ]
    for b in backends:
        drop = q[b].get("max_target_drop_vs_onnx")
        lines.append(
            f"| {b} | {lat[b]['set_image_wall_p50_s']:.3f} s | "
            f"{lat[b]['set_image_wall_ratio_to_torch']:.2f} | "
            f"{lat[b]['set_image_cpu_p50_s']:.3f} s | {1000 * lat[b]['predict_wall_p50_s']:.0f} ms"
            f" | {q[b]['mean_dice']:.4f} | {'' if drop is None else f'{drop:+.4f}'} |"
        )
    if "volume_3d" in res:
        lines += [
            "",
            "| backend | 3D Dice | s per object (median) | objects |",
            "|---|---|---|---|",
        ]
        for b, v in res["volume_3d"].items():
            lines.append(
                f"| {b} | {v['mean_dice']:.4f} | {v['median_s_per_object']:.1f} | {v['objects']} |"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--datasets", nargs="+", default=list(UNSEEN_2D))
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    ap.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads")
    ap.add_argument("--repeats", type=int, default=5, help="latency rounds over the images")
    ap.add_argument("--limit", type=int, default=3, help="cases per dataset for Dice")
    ap.add_argument("--max-targets", type=int, default=2, help="targets per case for Dice")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--volume", type=Path, nargs="*", default=[], help="3D dataset folders")
    ap.add_argument("--volume-limit", type=int, default=1)
    ap.add_argument("--volume-max-targets", type=int, default=2)
    ap.add_argument("--min-voxels", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/encoder_backends.json"))
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    backends = tuple(args.backends)
    start = time.perf_counter()
    preds = _predictors(backends, args.threads)
    lat = latency(preds, _first_cases(args.data, args.datasets), args.repeats)
    rows = box_dice(preds, args)
    rows3d = volume_3d(preds, args) if args.volume else []
    res = summarize(lat, rows, rows3d, backends)
    res.update(
        {
            **run_metadata(args),
            "wall_s": time.perf_counter() - start,
            "targets": rows,
            "targets_3d": rows3d,
        }
    )
    res["settings"]["volume"] = [str(v) for v in args.volume]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    print(markdown(res, backends))
    print(f"\nwall time {res['wall_s']:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
