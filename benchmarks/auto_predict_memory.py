"""Peak memory of ``medseg auto predict`` on one large CT-like volume (default 300x512x512).

Measures what issue 7 asks ("report peak RSS for a 512x512x300 volume; target <= 4 GB"):

1. writes a model folder with a random-weight 3D plan (DynUNet, 128^3 patches, widths
   8..80, 2 classes, 1 mm target spacing; accuracy is irrelevant here, the memory of
   sliding-window inference, resampling and pasting is what is measured) and a
   ``Z x Y x X`` float32 NIfTI volume with a CT-like body (air outside, soft tissue, one
   bright blob) at 1 mm;
2. runs ``medseg auto predict MODEL VOLUME OUT --threads N`` in a fresh process and reads
   that process's peak RSS (``ru_maxrss`` of the child, so the volume generation of this
   script is not counted) and its wall time.

    .venv/bin/python benchmarks/auto_predict_memory.py --shape 300 512 512 --threads 1 \
        --work /tmp/auto_mem

Prints one JSON line (and writes ``WORK/result.json``). ``--shape 60 128 128`` is a quick
check (a few seconds).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def write_model(model_dir: Path, patch: int, filters: tuple[int, ...]) -> None:
    """``plans.json`` + ``fold_all/checkpoint_final.pt`` with random weights."""
    import torch

    from medseg.automatic.network import build_network
    from medseg.automatic.plan import Normalization, Plan, save_plan

    depth = len(filters)
    plan = Plan(
        configuration="3d", data_dims=3, transpose=(0, 1, 2), target_spacing=(1.0, 1.0, 1.0),
        patch_size=(patch,) * 3, batch_size=2,
        kernel_sizes=((3, 3, 3),) * depth,
        strides=((1, 1, 1),) + ((2, 2, 2),) * (depth - 1),
        filters=filters, deep_supervision_heads=0, channel_names=("CT",),
        normalization=(Normalization("ct", mean=40.0, std=200.0, lower=-1000.0, upper=1500.0),),
        use_nonzero_mask=False, label_values=(0, 1), label_names={0: "background", 1: "organ"},
        median_shape=(300, 512, 512), anisotropic=False, estimated_iteration_s=1.0,
        estimated_iterations=1, estimated_memory_mb=0.0,
        notes=("random weights: memory benchmark only",),
    )  # fmt: skip
    fold = model_dir / "fold_all"
    fold.mkdir(parents=True, exist_ok=True)
    save_plan(plan, model_dir / "plans.json")
    torch.manual_seed(0)
    net = build_network(plan, deep_supervision=False)
    state = {"model": net.state_dict(), "plan": plan.to_dict(),
             "config": {"deep_supervision": False}, "iteration": 0}  # fmt: skip
    torch.save(state, fold / "checkpoint_final.pt")


def write_volume(path: Path, shape: tuple[int, int, int]) -> None:
    """A ``(Z, Y, X)`` float32 CT-like volume at 1 mm: air, an elliptic body, a blob."""
    import numpy as np

    from medseg.io import Image, save

    z, y, x = shape
    vol = np.full(shape, -1000.0, np.float32)
    yy, xx = np.ogrid[:y, :x]
    body = ((yy - y / 2) / (0.42 * y)) ** 2 + ((xx - x / 2) / (0.47 * x)) ** 2 <= 1
    blob = ((yy - y / 2) / (0.1 * y)) ** 2 + ((xx - x / 3) / (0.1 * x)) ** 2 <= 1
    rng = np.random.default_rng(0)
    for k in range(z):  # slice by slice: no second full-size temporary
        sl = vol[k]
        sl[body] = 40.0
        if z // 4 <= k < 3 * z // 4:
            sl[blob] = 300.0
        sl += rng.normal(0, 20, (y, x)).astype(np.float32)
    save(Image(vol, spacing=(1.0, 1.0, 1.0), modality="CT"), path)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, nargs=3, default=(300, 512, 512), metavar=("Z", "Y", "X"))
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--filters", type=int, nargs="+", default=(8, 16, 32, 64, 80))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path("/tmp/auto_mem"))
    args = ap.parse_args(argv)
    model, volume = args.work / "model", args.work / "volume.nii.gz"
    write_model(model, args.patch, tuple(args.filters))
    write_volume(volume, tuple(args.shape))
    out = args.work / "pred"
    cmd = [sys.executable, "-m", "medseg", "-q", "auto", "predict", str(model), str(volume),
           str(out), "--threads", str(args.threads)]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    result = {"shape_zyx": list(args.shape), "patch": args.patch, "filters": list(args.filters),
              "threads": args.threads, "peak_rss_gb": round(peak_kib * 1024 / 1e9, 3),
              "wall_s": round(wall, 1), "command": " ".join(cmd)}  # fmt: skip
    (args.work / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
