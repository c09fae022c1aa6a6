"""``medseg serve`` as a user starts it: a subprocess on a free port, the sample store, the
URL with the token on stdout (predictions and restarts are covered in-process)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def _start(store: Path) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "medseg.cli.main", "serve", "--sample-store", str(store),
           "--port", "0", "--threads", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 180
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        match = re.search(r"open (http://127\.0\.0\.1:\d+/\?token=[\w-]+)", line)
        if match:
            return proc, match.group(1)
    proc.kill()
    pytest.fail("medseg serve printed no URL")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:  # pragma: no cover
        proc.kill()


@pytest.mark.slow
def test_serve_opens_on_the_sample(tmp_path: Path) -> None:
    store = tmp_path / "sample_store"
    proc, url = _start(store)
    try:
        base, token = url.split("/?token=")
        assert len(token) >= 24
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{base}/api/images").status_code == 401
        images = httpx.get(f"{base}/api/images", headers=headers).json()
        assert [im["name"] for im in images] == ["sample_ct/CT_small.dcm"]
        page = httpx.get(url, follow_redirects=True)
        assert page.status_code == 200 and "medseg" in page.text
        info = httpx.get(f"{base}/api/info", headers=headers).json()
        # the default model (litemedsam+interactive) takes boxes, clicks and scribbles
        assert info["model"]["name"] == "litemedsam+interactive" and info["auth"] is True
        assert all(info["model"]["tools"][t]["enabled"] for t in ("box", "scribble"))
    finally:
        _stop(proc)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status shows it
    assert proc.returncode in (0, -signal.SIGTERM)
    assert (store / "sample_ct" / "CT_small.dcm").is_file()


def test_auto_model_option_reaches_the_server_config(tmp_path: Path) -> None:
    import argparse

    from medseg.cli.commands import serve

    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    data = tmp_path / "data"
    data.mkdir()
    args = parser.parse_args([str(data), "--auto-model", str(tmp_path / "model")])
    assert serve._config(args).auto_model == tmp_path / "model"
    assert serve._config(parser.parse_args([str(data)])).auto_model is None
