"""Load test of ``medseg serve``: N concurrent clients doing predict calls over loopback.

Starts ``medseg serve`` on the built-in sample (in a temporary sample store, on a free
loopback port) in a subprocess, unless ``--url``/``--token`` point at a running server. Each
client opens its own session on the same image (sessions share its embedding) and sends
``--requests`` predict calls: a box with a little jitter, every third call with a negative
click. The run stops by itself after the requests or ``--duration`` seconds, whichever comes
first, and prints (and with ``--json`` writes) p50/p95/max latency, throughput, errors and
the server process's memory: its RSS sampled every 0.1 s during the load (median, max), its
RSS before the load and its peak RSS over its whole life (``VmHWM``, start-up included),
read from ``/proc/PID/status`` (the server this script started, or ``--pid``)::

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


def rss_kib(pid: int, field: str = "VmRSS") -> int | None:
    """``field`` (``VmRSS``: now, ``VmHWM``: peak) of process ``pid`` in KiB, or None."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    return next((int(ln.split()[1]) for ln in lines if ln.startswith(f"{field}:")), None)


class RssSampler(threading.Thread):
    """Samples the RSS of process ``pid`` every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.before = rss_kib(pid)
        self.samples: list[int] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            value = rss_kib(self.pid)
            if value is not None:
                self.samples.append(value)

    def stop(self) -> dict[str, Any]:
        """Stop sampling; returns the RSS summary in MiB (None where not measured)."""
        self._stop_event.set()
        self.join()
        peak = rss_kib(self.pid, "VmHWM")

        def mib(kib: float | None) -> float | None:
            return None if kib is None else round(kib / 1024, 1)

        arr = np.array(self.samples, float)
        return {
            "before_load_mb": mib(self.before),
            "median_mb": mib(float(np.median(arr))) if arr.size else None,
            "max_sampled_mb": mib(float(arr.max())) if arr.size else None,
            "peak_mb": mib(peak),
            "samples": int(arr.size),
        }


def start_server(
    store: Path, backend: str | None, threads: int | None, timeout: float,
    cache_mb: int | None = None,
) -> tuple[Any, str]:  # fmt: skip
    """``medseg serve`` in a subprocess; returns (process, URL with token)."""
    cmd = [sys.executable, "-m", "medseg", "serve", "--sample-store", str(store), "--port", "0"]
    if backend:  # the default model (litemedsam+interactive) takes no backend option
        cmd += ["--backend", backend]
    if threads:
        cmd += ["--threads", str(threads)]
    if cache_mb:
        cmd += ["--cache-mb", str(cache_mb)]
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


def run_load(
    url: str, clients: int, requests: int, duration: float, pid: int | None = None
) -> dict[str, Any]:
    """Run the clients against ``url``; ``pid``: the server process whose RSS is sampled."""
    import httpx

    base, token = url.split("/?token=") if "/?token=" in url else (url.rstrip("/"), "")
    images = httpx.get(f"{base}/api/images", headers={"Authorization": f"Bearer {token}"}).json()
    image_id = next(im["id"] for im in images if "CT_small" in im["name"])
    sampler = RssSampler(pid) if pid is not None else None
    if sampler is not None:
        sampler.start()
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(
            lambda k: client(base, token, image_id, requests, start + duration, k), range(clients)
        ))  # fmt: skip
    wall = time.monotonic() - start
    rss = sampler.stop() if sampler is not None else None
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
        "server_rss": rss,
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=25, help="predict calls per client")
    parser.add_argument("--duration", type=float, default=120, help="stop after this many s")
    parser.add_argument("--url", help="URL (with ?token=) of a running server; default: start one")
    parser.add_argument("--backend", default=None, choices=("auto", "torch", "onnx"),
                        help="the started server's --backend (default: the model's)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="model CPU threads")
    parser.add_argument("--cache-mb", type=int, default=None,
                        help="the started server's --cache-mb (default: its own)")  # fmt: skip
    parser.add_argument("--pid", type=int, default=None,
                        help="process id of the --url server, to sample its RSS")  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    proc = None
    with tempfile.TemporaryDirectory(prefix="medseg-load-") as tmp:
        try:
            url, pid = args.url, args.pid
            if url is None:
                t0 = time.monotonic()
                proc, url = start_server(Path(tmp), args.backend, args.threads, timeout=600,
                                         cache_mb=args.cache_mb)  # fmt: skip
                pid = proc.pid
                log.info("server up in %.1f s", time.monotonic() - t0)
            result = run_load(url, args.clients, args.requests, args.duration, pid)
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
