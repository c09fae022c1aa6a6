"""Harness of the Chromium tests (test_browser.py, test_browser_coords.py): Debian's Chromium
driven by Playwright against a live uvicorn server in a thread; skips without them unless
``MEDSEG_REQUIRE_BROWSER=1``."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medseg.io.image import Image
from medseg.server.app import create_app
from medseg.server.config import ServerConfig
from medseg.server.views import VIEWS, view_axes, view_shape, view_slice

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SCREENSHOT = ARTIFACTS / "serve_app_with_mask.png"
MAX_BOX_TO_SECOND_CORRECTION_S = 10.0  # issue 6, "Done when"


@pytest.fixture(scope="module")
def sync_api() -> Any:
    """``playwright.sync_api``; skips without Chromium or Playwright, or fails when
    ``MEDSEG_REQUIRE_BROWSER=1`` says the browser test must run (CI with Chromium)."""
    missing = None
    if not CHROMIUM.exists():
        missing = f"needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api as api
        except ImportError as err:
            missing = f"needs Playwright (pip install -e '.[test]'): {err}"
    if missing is None:
        return api
    if os.environ.get("MEDSEG_REQUIRE_BROWSER") == "1":
        pytest.fail(f"MEDSEG_REQUIRE_BROWSER=1 but the browser test cannot run: {missing}")
    pytest.skip(missing)


def _serve(model: Any, store: Path) -> Iterator[tuple[str, Path]]:
    """(URL with token, datastore) of a live uvicorn server in a thread."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = ServerConfig(data_dir=store, port=port, warmup=False)
    app = create_app(config, model=model)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield config.url(app.state.medseg.token), store
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def default_model() -> Any:
    """The default model (``auto`` = medseg-interactive), built once for this module."""
    from medseg.models.registry import create_model

    return create_model("auto", num_threads=1)


@pytest.fixture()
def served(model: Any, store: Path) -> Iterator[tuple[str, Path]]:
    """The app with LiteMedSAM (accepts clicks, but was trained on boxes: they rarely help)."""
    yield from _serve(model, store)


@pytest.fixture()
def served_auto(default_model: Any, store: Path) -> Iterator[tuple[str, Path]]:
    """The app with the default model (``auto`` = medseg-interactive: every tool)."""
    yield from _serve(default_model, store)


# The app's CSP forbids eval, so Playwright's wait_for_function cannot run in the page; these
# helpers go through page.evaluate (CDP), and waits poll inside the page.
APP = "window.medsegApp"


def _label_count(page: Any) -> int:
    return page.evaluate(f"() => {APP}.volume.data.reduce((a, v) => a + (v > 0), 0)")


def _pixel(page: Any, x: float, y: float) -> int:
    """The label value of image pixel (x, y) on the slice shown."""
    return page.evaluate(
        f"([x, y]) => {{ const a = {APP}; const {{ cols }} = a.volume.dims(a.view);"
        " const slice = a.volume.getSlice(a.view, a.indices[a.view]);"
        " return slice[Math.floor(y) * cols + Math.floor(x)]; }",
        [x, y],
    )


def _wait_until(page: Any, condition: str, timeout_s: float = 30.0) -> None:
    """Wait until the JavaScript expression ``condition`` (``a`` is the app) is true."""
    ok = page.evaluate(
        f"async (ms) => {{ const a = {APP}; const until = performance.now() + ms;"
        f" while (!({condition})) {{ if (performance.now() > until) return false;"
        " await new Promise((r) => setTimeout(r, 10)); } return true; }",
        timeout_s * 1000,
    )
    assert ok, f"timed out after {timeout_s} s waiting for {condition}"


def _wait_for_mask(page: Any, clicks: int) -> None:
    """Wait until the mask of the current prompt with ``clicks`` clicks is shown (the app
    stores the prompt as ``applied`` and redraws the overlay in the same task)."""
    _wait_until(page, f"a.applied && a.applied.points.length === {clicks} && !a.inflight")


def _wait_for_labels(page: Any, differs_from: int) -> int:
    _wait_until(page, f"a.volume.data.reduce((n, v) => n + (v > 0), 0) !== {differs_from}")
    return _label_count(page)


def _to_screen(page: Any, x: float, y: float) -> tuple[float, float]:
    geo = page.evaluate(
        f"() => {{ const v = {APP}.viewer; const r = v.canvas.getBoundingClientRect();"
        " return [r.left, r.top, v.ox, v.oy, v.scale, v.aspect]; }"
    )
    left, top, ox, oy, scale, aspect = geo
    return left + ox + x * scale, top + oy + y * scale * aspect


def _draw_box(page: Any, box: tuple[float, float, float, float]) -> None:
    start, end = _to_screen(page, box[0], box[1]), _to_screen(page, box[2], box[3])
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=4)
    page.mouse.move(*end, steps=4)
    page.mouse.up()


def _stroke(page: Any, a: tuple[float, float], b: tuple[float, float], button: str = "left"):
    page.mouse.move(*_to_screen(page, *a))
    page.mouse.down(button=button)
    page.mouse.move(*_to_screen(page, *b), steps=8)
    page.mouse.up(button=button)


def _check_view_mapping_matches_server(page: Any) -> None:
    """The app's LabelVolume maps view slices to voxels exactly like views.view_slice."""
    arr = np.arange(3 * 4 * 5).reshape(3, 4, 5)
    directions = [np.eye(3), np.diag([-1.0, -1.0, 1.0]),
                  np.array([[0, 0, -1.0], [1.0, 0, 0], [0, -1.0, 0]])]  # fmt: skip
    for direction in directions:
        image = Image(arr, direction=direction)
        axes = {v: view_axes(image, v) for v in VIEWS}
        for view in VIEWS:
            for index in range(view_shape(image, view)[0]):
                got = page.evaluate(
                    "async ([shape, axes, view, index]) => {"
                    " const { LabelVolume } = await import('/static/volume.js');"
                    " return Array.from(new LabelVolume(shape, axes).sliceIndices(view, index)); }",
                    [list(arr.shape), axes, view, index],
                )
                assert got == view_slice(image, view, index).ravel().tolist(), (view, index)


def _open_browser(pw: Any) -> tuple[Any, Any, list[str]]:
    """(browser, page, list collecting the page's JavaScript errors)."""
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
    page = browser.new_page(viewport={"width": 1360, "height": 820})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return browser, page, errors


def _open_sample_ct(sync_api: Any, page: Any, url: str) -> Any:
    """Open the app on the sample CT; returns the status line locator."""
    page.goto(url)
    status = page.locator("#status-msg")
    sync_api.expect(status).to_contain_text("ready", timeout=60_000)
    page.select_option("#image-select", label="sample_ct/CT_small.dcm")
    sync_api.expect(status).to_contain_text("ready: sample_ct", timeout=60_000)
    return status


def _write_screenshot(page: Any) -> None:
    """The app as shown, to SCREENSHOT, atomically (temporary file + rename)."""
    ARTIFACTS.mkdir(exist_ok=True)
    png = page.screenshot(type="png")
    fd, tmp = tempfile.mkstemp(dir=ARTIFACTS, prefix=".serve_app_", suffix=".png.tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(png)
        os.chmod(tmp, 0o644)
        os.replace(tmp, SCREENSHOT)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _client_labels(page: Any) -> np.ndarray:
    return np.array(page.evaluate(f"() => Array.from({APP}.volume.data)"))
