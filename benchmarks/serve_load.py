"""Load test of ``medseg serve``: N concurrent clients doing predict calls over loopback.

Starts ``medseg serve`` on the built-in sample (in a temporary sample store, on a free
loopback port) in a subprocess, unless ``--url``/``--token`` point at a running server. Each
client opens its own session on the same image (sessions share its embedding) and sends
``--requests`` predict calls: a box with a little jitter, every third call with a negative
click. The run stops by itself after the requests or ``--duration`` seconds, whichever comes
first, and prints (and with ``--json`` writes) p50/p95/max latency, throughput and errors::

    .venv/bin/python benchmarks/serve_load.py --clients 4 --requests 25 --duration 120
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("medseg.bench.serve_load")

SAMPLE_BOX = (45, 40, 72, 63)  # medseg.data.samples.SAMPLE_CT_BOX


def start_server(store: Path, backend: str, threads: int | None, timeout: float) -> tuple[Any, str]:
    """``medseg serve`` in a subprocess; returns (process, URL with token)."""
    cmd = [sys.executable, "-m", "medseg.cli.main", "serve", "--sample-store", str(store),
           "--port", "0", "--backend", backend]  # fmt: skip
    if threads:
        cmd += ["--threads", str(threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    if proc.stdout is None:  # pragma: no cover - PIPE always gives a stream
        raise RuntimeError("no server output")
    for line in proc.stdout:
        log.debug("server: %s", line.rstrip())
        match = re.search(r"open (http://\S+)", line)
        if match:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, match.group(1)
        if time.monotonic() > deadline:
            break
    proc.terminate()
    raise RuntimeError("medseg serve did not start (see its output with -v)")


def client(base: str, token: str, image_id: str, n: int, stop_at: float, seed: int) -> dict:
    """One simulated user: a session and up to ``n`` predict calls before ``stop_at``."""
    import httpx

    rng = np.random.default_rng(seed)
    out: dict[str, list] = {"rtt_ms": [], "server_ms": [], "errors": []}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                      timeout=120) as http:  # fmt: skip
        r = http.post("/api/sessions", json={"image_id": image_id})
        if r.status_code != 201:
            out["errors"].append(f"session: {r.status_code} {r.text[:200]}")
            return out
        sid = r.json()["session_id"]
        for i in range(n):
            if time.monotonic() > stop_at:
                break
            box = [float(v + d) for v, d in zip(SAMPLE_BOX, rng.integers(-2, 3, 4), strict=True)]
            body: dict[str, Any] = {"box": box}
            if i % 3 == 2:
                body |= {"points": [[58.0, 51.0]], "point_labels": [0]}
            t0 = time.perf_counter()
            r = http.post(f"/api/sessions/{sid}/predict", json=body)
            rtt = (time.perf_counter() - t0) * 1000
            if r.status_code != 200:
                out["errors"].append(f"predict: {r.status_code} {r.text[:200]}")
                continue
            out["rtt_ms"].append(rtt)
            out["server_ms"].append(r.json()["latency_ms"])
    return out


def run_load(url: str, clients: int, requests: int, duration: float) -> dict[str, Any]:
    import httpx

    base, token = url.split("/?token=") if "/?token=" in url else (url.rstrip("/"), "")
    images = httpx.get(f"{base}/api/images", headers={"Authorization": f"Bearer {token}"}).json()
    image_id = next(im["id"] for im in images if "CT_small" in im["name"])
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(
            lambda k: client(base, token, image_id, requests, start + duration, k), range(clients)
        ))  # fmt: skip
    wall = time.monotonic() - start
    rtt = np.concatenate([r["rtt_ms"] for r in results]) if results else np.array([])
    server = np.concatenate([r["server_ms"] for r in results]) if results else np.array([])
    errors = [e for r in results for e in r["errors"]]

    def pct(a: np.ndarray, q: float) -> float:
        return round(float(np.percentile(a, q)), 1) if a.size else float("nan")

    return {
        "clients": clients, "requests_per_client": requests, "duration_limit_s": duration,
        "completed": int(rtt.size), "errors": len(errors), "error_samples": errors[:5],
        "wall_s": round(wall, 2), "throughput_rps": round(rtt.size / wall, 2) if wall else 0.0,
        "rtt_ms": {"p50": pct(rtt, 50), "p95": pct(rtt, 95), "max": pct(rtt, 100)},
        "server_ms": {"p50": pct(server, 50), "p95": pct(server, 95), "max": pct(server, 100)},
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=25, help="predict calls per client")
    parser.add_argument("--duration", type=float, default=120, help="stop after this many s")
    parser.add_argument("--url", help="URL (with ?token=) of a running server; default: start one")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx"))
    parser.add_argument("--threads", type=int, default=None, help="model CPU threads")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    proc = None
    with tempfile.TemporaryDirectory(prefix="medseg-load-") as tmp:
        try:
            url = args.url
            if url is None:
                t0 = time.monotonic()
                proc, url = start_server(Path(tmp), args.backend, args.threads, timeout=600)
                log.info("server up in %.1f s", time.monotonic() - t0)
            result = run_load(url, args.clients, args.requests, args.duration)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
