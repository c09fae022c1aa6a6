"""End to end in a real browser: Debian's Chromium (headless) driven by Playwright.

The app is served by uvicorn on a free loopback port in a thread. The test opens the
printed URL (with the token), draws a box on the sample CT, adds a negative click, checks
undo/redo, saves, and checks the saved label file. A screenshot of the app with the mask is
written to pytest's tmp dir (``app_with_mask.png``).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medseg.data.samples import SAMPLE_CT_BOX
from medseg.io.image import Image
from medseg.io.readers import load_label
from medseg.server.app import create_app
from medseg.server.config import ServerConfig
from medseg.server.views import VIEWS, view_axes, view_shape, view_slice

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)",
)


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
    yield config.url(app.state.medseg.token), store
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture()
def served(model: Any, store: Path) -> Iterator[tuple[str, Path]]:
    """The app with LiteMedSAM (box prompts only)."""
    yield from _serve(model, store)


@pytest.fixture()
def served_auto(store: Path) -> Iterator[tuple[str, Path]]:
    """The app with the default model (``auto`` = medseg-interactive: every tool)."""
    from medseg.models.registry import create_model

    yield from _serve(create_model("auto", num_threads=1), store)


def _label_count(page: Any) -> int:
    return page.evaluate("() => window.medsegApp.volume.data.reduce((a, v) => a + (v > 0), 0)")


def _to_screen(page: Any, x: float, y: float) -> tuple[float, float]:
    geo = page.evaluate(
        "() => { const v = window.medsegApp.viewer; const r = v.canvas.getBoundingClientRect();"
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


def _negative_click_undo_redo(page: Any, first: int) -> None:
    """Right-click (negative click) near the mask's right edge, then Ctrl+Z / Ctrl+Y."""
    _, y0, x1, y1 = SAMPLE_CT_BOX
    page.mouse.click(*_to_screen(page, x1 - 6, (y0 + y1) / 2), button="right")
    for _ in range(300):  # poll: the app's CSP forbids Playwright's eval-based waits
        if _label_count(page) != first:
            break
        time.sleep(0.1)
    second = _label_count(page)
    assert 0 < second < first
    page.locator("#canvas").focus()
    page.keyboard.press("Control+z")
    assert _label_count(page) == first
    page.keyboard.press("Control+y")
    assert _label_count(page) == second


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


def test_box_click_save_in_chromium(served: tuple[str, Path], tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    url, store = served
    with sync_api.sync_playwright() as pw:
        browser, page, errors = _open_browser(pw)
        page.goto(url.split("?")[0])  # without the token: the app asks for it
        sync_api.expect(page.locator("#login")).to_be_visible()
        page.goto(url)
        assert "token" not in page.url  # the token moved into a cookie
        expect = sync_api.expect
        status = page.locator("#status-msg")
        expect(status).to_contain_text("ready", timeout=60_000)
        page.select_option("#image-select", label="sample_ct/CT_small.dcm")
        expect(status).to_contain_text("ready: sample_ct", timeout=60_000)
        scribble = page.locator("[data-tool=scribble]")
        expect(scribble).to_have_attribute("aria-disabled", "true")
        assert "does not accept scribble" in scribble.get_attribute("title")

        _draw_box(page, SAMPLE_CT_BOX)
        expect(status).to_contain_text("mask:", timeout=30_000)
        first = _label_count(page)
        assert first > 50
        expect(page.locator("#latency")).to_contain_text("ms")
        tools = page.evaluate("() => window.medsegApp.model.tools")
        if tools["negative_click"]["enabled"]:
            _negative_click_undo_redo(page, first)
        time.sleep(0.2)
        page.screenshot(path=str(tmp_path / "app_with_mask.png"))

        _check_view_mapping_matches_server(page)
        page.locator("#save").click()
        expect(status).to_contain_text("saved version 1", timeout=30_000)
        expect(page.locator("#versions li")).to_have_count(1)
        with page.expect_download() as download:
            page.locator("#export").click()
        assert download.value.suggested_filename == "CT_small_labels_v1.nii.gz"
        client_labels = np.array(page.evaluate("() => Array.from(window.medsegApp.volume.data)"))
        assert not errors, errors
        browser.close()
    saved = list((store / "labels").rglob("v0001.png"))
    assert len(saved) == 1
    labels = load_label(saved[0]).array
    assert np.array_equal(labels.ravel(), client_labels)
    ys, xs = np.nonzero(labels)
    x0, y0, x1, y1 = SAMPLE_CT_BOX
    assert xs.min() >= x0 - 1 and xs.max() <= x1 + 1 and ys.min() >= y0 - 1 and ys.max() <= y1 + 1


def _wait_for_labels(page: Any, differs_from: int) -> int:
    for _ in range(300):  # poll: the app's CSP forbids Playwright's eval-based waits
        count = _label_count(page)
        if count != differs_from:
            return count
        time.sleep(0.1)
    return _label_count(page)


def test_scribble_on_a_volume_slice_in_chromium(served_auto: tuple[str, Path]) -> None:
    """Default model: a positive scribble on the phantom's middle slice segments the ball
    there; a negative scribble across it removes pixels."""
    from .conftest import PHANTOM_CENTRE

    sync_api = pytest.importorskip("playwright.sync_api")
    url, _ = served_auto
    with sync_api.sync_playwright() as pw:
        browser, page, errors = _open_browser(pw)
        page.goto(url)
        status = page.locator("#status-msg")
        sync_api.expect(status).to_contain_text("ready", timeout=60_000)
        page.select_option("#image-select", label="volumes/phantom.nii.gz")
        sync_api.expect(status).to_contain_text("ready: volumes", timeout=60_000)
        scribble = page.locator("[data-tool=scribble]")
        sync_api.expect(scribble).not_to_have_attribute("aria-disabled", "true")
        sync_api.expect(page.locator("#refine")).to_be_checked()  # the model's default
        scribble.click()
        z, cy, cx = PHANTOM_CENTRE
        # the app opens a volume on its middle slice, the ball's centre slice
        assert page.evaluate("() => window.medsegApp.indices[window.medsegApp.view]") == z
        start, end = _to_screen(page, cx - 4, cy), _to_screen(page, cx + 4, cy + 1)
        page.mouse.move(*start)
        page.mouse.down()
        page.mouse.move(*end, steps=6)
        page.mouse.up()
        first = _wait_for_labels(page, 0)
        assert first > 20
        # a negative (right-button) scribble over the ball's lower half
        start, end = _to_screen(page, cx - 6, cy + 4), _to_screen(page, cx + 6, cy + 4)
        page.mouse.move(*start)
        page.mouse.down(button="right")
        page.mouse.move(*end, steps=6)
        page.mouse.up(button="right")
        second = _wait_for_labels(page, first)
        assert 0 < second < first
        assert not errors, errors
        browser.close()


def test_api_docs_render_offline_in_chromium(served: tuple[str, Path]) -> None:
    """/docs shows the endpoints with Swagger UI from the package; requests that leave the
    machine are blocked, so a page that needs a CDN fails here."""
    sync_api = pytest.importorskip("playwright.sync_api")
    url, _ = served
    base = url.split("?")[0].rstrip("/")
    with sync_api.sync_playwright() as pw:
        browser, page, errors = _open_browser(pw)
        outside: list[str] = []

        def only_local(route: Any) -> None:
            if route.request.url.startswith(base):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", only_local)
        page.goto(f"{base}/docs")
        sync_api.expect(page.locator(".swagger-ui .info .title")).to_contain_text(
            "medseg annotation server", timeout=30_000
        )
        sync_api.expect(page.locator(".opblock-summary-path").first).to_be_visible()
        assert any(
            "/api/images" in t for t in page.locator(".opblock-summary-path").all_inner_texts()
        )
        assert not outside, outside
        assert not errors, errors
        browser.close()
