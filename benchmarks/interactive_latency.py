"""Latency and memory of one model in a fresh process: ``set_image`` and per-``predict`` time
(p50/p95) and peak RSS, on the held-out 2D images of ``../shared/data``.

Each image gets ``set_image`` and then, for up to ``--targets`` targets, a box followed by 5
corrective clicks (``medseg.prompts.simulation``), each passing the previous prediction as
``mask_input``. Run once per model (peak RSS is per process)::

    .venv/bin/python benchmarks/interactive_latency.py medseg-interactive --out lat.json
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("medseg.bench.latency")

DATASETS = ("isbi2012_em", "miccai15_nuclei", "sammed2d_demo", "kvasir_seg_sample",
            "ham10000_isic_sample", "cxr_lung_demo", "stardist_nuclei")  # fmt: skip


def _targets(label: np.ndarray, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    values = [int(v) for v in np.unique(label) if v]
    picked = rng.choice(values, size=min(k, len(values)), replace=False)
    return [label == v for v in picked]


def measure(model: str, shared: Path, targets: int, seed: int) -> dict:
    import medseg
    from medseg.io import load, load_label
    from medseg.prompts.simulation import ClickSimulator, simulate_box
    from medseg.training.interactive.split import is_held_out

    rng = np.random.default_rng(seed)
    predictor = medseg.Predictor(model, progress=False)
    set_times, predict_times = [], []
    for ds in DATASETS:
        for img_path in sorted((shared / ds / "images").glob("*.png")):
            if not is_held_out(ds, img_path.stem):
                continue
            image = load(img_path)
            label = np.asarray(load_label(shared / ds / "labels" / img_path.name).array)
            start = time.perf_counter()
            predictor.set_image(image)
            set_times.append(time.perf_counter() - start)
            for gt in _targets(label, targets, rng):
                sim = ClickSimulator(gt, rng=rng)
                kwargs: dict = {"box": simulate_box(gt, 0.1, rng)}
                pred = None
                for _ in range(6):
                    start = time.perf_counter()
                    pred = predictor.predict(**kwargs)
                    predict_times.append(time.perf_counter() - start)
                    click = sim.next(pred.mask)
                    if click is None:
                        break
                    kwargs.update(points=sim.points, point_labels=sim.labels, mask_input=pred)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    pct = lambda xs, q: float(np.percentile(np.asarray(xs) * 1000.0, q))  # noqa: E731
    return {
        "model": model,
        "images": len(set_times),
        "predictions": len(predict_times),
        "set_image_ms": {"p50": pct(set_times, 50), "p95": pct(set_times, 95)},
        "predict_ms": {"p50": pct(predict_times, 50), "p95": pct(predict_times, 95)},
        "peak_rss_mb": rss_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--shared", type=Path, default=shared)
    parser.add_argument("--targets", type=int, default=4, help="targets per image")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = measure(args.model, args.shared, args.targets, args.seed)
    text = json.dumps(result, indent=1)
    log.info("%s", text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
