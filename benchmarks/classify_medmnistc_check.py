"""Compare medseg's MedMNIST-C corruptions with the official ``medmnistc`` package.

``medmnistc`` is not a medseg dependency (it pins scikit-image 0.23.2 and medmnist 3.0.1 and
needs ImageMagick); install it somewhere throwaway and put it on ``PYTHONPATH``::

    pip install --target /tmp/mc --no-deps medmnistc==0.1.0 wand opencv-python-headless
    apt-get install -y libmagickwand-6.q16-6
    PYTHONPATH=/tmp/mc python benchmarks/classify_medmnistc_check.py \\
        /work/shared/data/medmnist/retinamnist.npz \\
        --json benchmarks/results/classify_medmnistc_check.json

Without ``medmnistc`` it prints why and exits 0. On the test images of the file it runs every
corruption of the ``retinamnist`` set (RGB), a few families of other sets on the same RGB
images, and the ``chestmnist`` set on their grey (``L``) version (the grey route), severities
1..5, through both implementations. Deterministic families: mean absolute difference in
[0, 1] units, largest difference in grey levels, share of identical values. Motion blur is
deterministic once its random angle is fixed: both get the angle that ``medmnistc`` draws.
Random (noise) families cannot match value by value: the differences of the output mean and
of the std of ``corrupted - clean`` are reported instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

RANDOM = {"gaussian_noise", "speckle_noise", "shot_noise", "impulse_noise"}
# (official set, corruption, grey?) beyond the retinamnist set
EXTRA = [
    ("dermamnist", "impulse_noise"),
    ("dermamnist", "shot_noise"),
    ("dermamnist", "zoom_blur"),
    ("dermamnist", "brightness_up"),
    ("dermamnist", "contrast_up"),
    ("pathmnist", "saturate"),
    ("chestmnist", "gaussian_blur"),
    ("chestmnist", "gamma_corr_up"),
    ("chestmnist", "gamma_corr_down"),
]


class _FixedAngle:
    """Stands in for a Generator: ``uniform`` returns a preset motion-blur angle."""

    def __init__(self, angle: float) -> None:
        self.angle = angle

    def uniform(self, *_: float) -> float:
        return self.angle


def _official(corruptor, name: str, img: np.ndarray, sev: int, seed: int, grey: bool):
    """``medmnistc``'s output for one uint8 image ``(H, W, 3)`` or ``(H, W)``, and the
    motion-blur angle it drew (else None)."""
    from PIL import Image

    np.random.seed(seed)
    if name == "impulse_noise":
        corruptor.rng = np.random.default_rng(seed)
    angle = None
    if name == "motion_blur":
        angle = float(np.random.uniform(-45, 45))
        np.random.seed(seed)
    out = corruptor.apply(Image.fromarray(img).convert("RGB"), sev - 1)
    if grey:
        out = np.asarray(Image.fromarray(out).convert("L"))
    return np.asarray(out, dtype=np.uint8), angle


def _ours(x: np.ndarray, dataset: str, name: str, sev: int, seed: int, angle):
    """Ours for one float image ``(C, H, W)``, as uint8 ``(H, W, C)``."""
    from medseg.classify.corrupt import corrupt

    rng = _FixedAngle(angle) if angle is not None else np.random.default_rng(seed)
    y = corrupt(x, name, sev, rng, dataset=dataset)
    return np.round(np.moveaxis(y, 0, -1) * 255).astype(np.uint8)


def compare(images: np.ndarray, dataset: str, name: str, grey: bool) -> dict:
    """Per-severity agreement of one corruption on uint8 images ``(N, H, W[, 3])``."""
    from medmnistc.corruptions.registry import CORRUPTIONS_DS

    corruptor = CORRUPTIONS_DS[dataset][name]
    rows = {}
    for sev in range(1, 6):
        ref, ours = [], []
        for i, img in enumerate(images):
            r, angle = _official(corruptor, name, img, sev, 1000 * sev + i, grey)
            x = (img[None] if grey else np.moveaxis(img, -1, 0)).astype(np.float32) / 255
            o = _ours(x, dataset, name, sev, 1000 * sev + i, angle)
            ref.append(r if not grey else r[..., None])
            ours.append(o)
        ref_f = np.stack(ref).astype(np.float64) / 255
        our_f = np.stack(ours).astype(np.float64) / 255
        clean = (images[..., None] if grey else images).astype(np.float64) / 255
        d = np.abs(our_f - ref_f)
        rows[str(sev)] = {
            "mad": float(d.mean()),
            "max_levels": int(np.round(d.max() * 255)),
            "identical": float((d == 0).mean()),
            "d_mean": float(our_f.mean() - ref_f.mean()),
            "d_std_residual": float((our_f - clean).std() - (ref_f - clean).std()),
            "std_residual_official": float((ref_f - clean).std()),
        }
    return {
        "set": dataset,
        "corruption": name,
        "grey": grey,
        "random": name in RANDOM,
        "severities": rows,
    }


def _table(results: list[dict]) -> str:
    lines = [
        "| set | corruption | kind | MAD s1..s5 | max levels | identical (worst) | "
        "Δmean / Δstd(resid) s3 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r["severities"]
        mad = " ".join(f"{s[k]['mad']:.2g}" for k in sorted(s))
        mx = max(v["max_levels"] for v in s.values())
        kind = "random" if r["random"] else "determ."
        lines.append(
            f"| {r['set']}{' (grey)' if r['grey'] else ''} | {r['corruption']} | {kind} | {mad}"
            f" | {mx} | {min(v['identical'] for v in s.values()):.4f} | {s['3']['d_mean']:+.4f} / "
            f"{s['3']['d_std_residual']:+.4f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("npz", type=Path, help="a MedMNIST RGB .npz (RetinaMNIST)")
    p.add_argument("--n", type=int, default=0, help="first N test images (default all)")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)
    try:
        import medmnistc.corruptions.registry  # noqa: F401
    except ImportError as exc:
        print(f"skipped: medmnistc is not importable ({exc}); see this script's docstring")
        return 0
    if not args.npz.exists():
        print(f"skipped: {args.npz} not found")
        return 0
    if np.lib.NumpyVersion(np.__version__) >= "2.0.0":  # medmnistc's motion blur calls it
        np.fromstring = lambda b, dtype=float: np.frombuffer(b, dtype)  # type: ignore[assignment]
    from PIL import Image

    rgb = np.load(args.npz)["test_images"]
    rgb = rgb[: args.n] if args.n else rgb
    grey = np.stack([np.asarray(Image.fromarray(im).convert("L")) for im in rgb])
    from medseg.classify.corrupt_sets import OFFICIAL_SETS

    jobs = [("retinamnist", n, False) for n in OFFICIAL_SETS["retinamnist"]]
    jobs += [(ds, n, False) for ds, n in EXTRA]
    jobs += [("chestmnist", n, True) for n in OFFICIAL_SETS["chestmnist"]]
    results = []
    for ds, name, is_grey in jobs:
        results.append(compare(grey if is_grey else rgb, ds, name, is_grey))
        print(f"{ds} {name}{' grey' if is_grey else ''}: done", file=sys.stderr)
    print(_table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {"data": str(args.npz), "n_images": len(rgb), "medmnistc": "0.1.0"}
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
