"""Peak memory of ``medseg serve`` on one large, legitimate CT (default 600 x 512 x 512 int16).

Issue 17 asks that a 512 x 512 x 600 CT still works in the server "within a stated RAM
figure". This script

1. writes a CT-like ``Z x Y x X`` int16 NIfTI (air outside an elliptic body of soft tissue,
   one bright blob per slice range) into a temporary data folder;
2. starts ``medseg serve DATA --no-auth`` in a subprocess (default model, ``--cache-mb``
   as given) and samples the server's RSS (``/proc/PID/status``; peak = ``VmHWM``);
3. opens a session on the volume, sends a box on the middle axial slice, then the same box
   with ``propagate`` (3D), and a box on the middle coronal slice;
4. prints one JSON line: RSS and peak RSS after each step, the overall peak, and each
   call's time.

    python benchmarks/serve_large_volume.py --shape 600 512 512 --threads 1 --json out.json

``--shape 60 128 128`` is a quick check (seconds).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from serve_load import RssSampler, rss_kib

log = logging.getLogger("serve_large_volume")


def write_ct(path: Path, shape: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """A CT-like int16 NIfTI of ``shape`` ``(Z, Y, X)`` at 1 mm; returns the blob's axial box
    ``(x0, y0, x1, y1)`` in array indices."""
    import medseg.io as mio

    z, y, x = shape
    yy, xx = np.mgrid[:y, :x]
    body = ((yy - y / 2) / (0.42 * y)) ** 2 + ((xx - x / 2) / (0.45 * x)) ** 2 <= 1
    blob = ((yy - y / 2) / (0.08 * y)) ** 2 + ((xx - x * 0.6) / (0.08 * x)) ** 2 <= 1
    vol = np.full(shape, -1000, np.int16)
    rng = np.random.default_rng(0)
    for k in range(z):  # slice by slice: the script itself stays small
        plane = np.where(body, 40, -1000).astype(np.int16)
        if z * 0.3 <= k <= z * 0.7:
            plane[blob] = 200
        vol[k] = plane + rng.integers(-20, 21, (y, x), dtype=np.int16)
    mio.save(mio.Image(vol, spacing=(1.0, 1.0, 1.0), modality="CT"), path)
    rows, cols = np.nonzero(blob)
    return int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())


def start(data: Path, threads: int | None, cache_mb: int | None) -> tuple[Any, str]:
    """``medseg serve DATA --no-auth`` on a free port; returns (process, base URL)."""
    import re

    cmd = [sys.executable, "-m", "medseg", "serve", str(data), "--no-auth", "--port", "0"]
    if threads:
        cmd += ["--threads", str(threads)]
    if cache_mb:
        cmd += ["--cache-mb", str(cache_mb)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.stdout is None:  # pragma: no cover - PIPE always gives a stream
        raise RuntimeError("no server output")
    for line in proc.stdout:
        log.debug("server: %s", line.rstrip())
        match = re.search(r"(http://[0-9.:]+)", line)
        if match and "open" in line:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, match.group(1)
    proc.terminate()
    raise RuntimeError("medseg serve did not start (run with -v)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    shape = tuple(args.shape)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        t0 = time.perf_counter()
        box = write_ct(data / "ct.nii.gz", shape)
        log.info("wrote %s volume in %.0f s", shape, time.perf_counter() - t0)
        proc, base = start(data, args.threads, args.cache_mb)
        sampler = RssSampler(proc.pid)
        sampler.start()
        steps: list[dict[str, Any]] = []
        try:
            with httpx.Client(base_url=base, timeout=1800) as http:
                image_id = http.get("/api/images").json()[0]["id"]
                mid, mid_y = shape[0] // 2, shape[1] // 2
                calls = [
                    ("session", "post", "/api/sessions", {"image_id": image_id}),
                    ("axial box", "predict", None, {"box": box, "slice_index": mid}),
                    ("axial box, propagate", "predict", None,
                     {"box": box, "slice_index": mid, "propagate": True}),
                    ("coronal box", "predict", None,
                     {"view": "coronal", "slice_index": mid_y,
                      "box": [box[0], int(shape[0] * 0.35), box[2], int(shape[0] * 0.65)]}),
                ]  # fmt: skip
                sid = None
                for name, kind, url, body in calls:
                    t = time.perf_counter()
                    path = url if kind == "post" else f"/api/sessions/{sid}/predict"
                    r = http.post(path, json=body)
                    if r.status_code not in (200, 201):
                        raise RuntimeError(f"{name}: {r.status_code} {r.text[:300]}")
                    if kind == "post":
                        sid = r.json()["session_id"]
                    now, peak = rss_kib(proc.pid) or 0, rss_kib(proc.pid, "VmHWM") or 0
                    steps.append({"step": name, "s": round(time.perf_counter() - t, 2),
                                  "rss_mb": round(now / 1024, 1),
                                  "peak_mb": round(peak / 1024, 1)})  # fmt: skip
                    log.info("%s", steps[-1])
        finally:
            rss = sampler.stop()
            proc.terminate()
            proc.wait(30)
    return {"shape": list(shape), "voxels": int(np.prod(shape)), "cache_mb": args.cache_mb,
            "threads": args.threads, "steps": steps, "rss": rss}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shape", type=int, nargs=3, default=(600, 512, 512), metavar=("Z", "Y", "X")
    )
    parser.add_argument("--threads", type=int, default=1, help="model CPU threads")
    parser.add_argument("--cache-mb", type=int, default=None, help="server cache budget")
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    result = run(args)
    text = json.dumps(result)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
