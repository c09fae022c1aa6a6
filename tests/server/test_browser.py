"""End to end in a real browser: Debian's Chromium (headless) driven by Playwright.

The app is served by uvicorn on a free loopback port in a thread. With the default model the
test opens the printed URL (with the token), draws a box on the sample CT, corrects the mask
with a negative and a positive click (timed: box to second corrected mask under 10 s, the
issue's "Done when"), checks undo/redo, saves, checks the saved label file and the export,
paints with the brush and eraser, restores an older version and opens the help panel. A
screenshot of the app with the mask is written to ``test-artifacts/serve_app_with_mask.png``
at the repository root.

Without Chromium or Playwright the tests skip, unless ``MEDSEG_REQUIRE_BROWSER=1`` (set by
``.ci/run`` where Chromium is installed): then they fail.
"""

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

from medseg.data.samples import SAMPLE_CT_BOX
from medseg.io.image import Image
from medseg.io.readers import load_label
from medseg.server.app import create_app
from medseg.server.config import ServerConfig
from medseg.server.views import VIEWS, view_axes, view_shape, view_slice

pytestmark = pytest.mark.slow  # a real Chromium per test

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


def test_box_two_corrections_save_in_chromium(sync_api: Any, served_auto: tuple[str, Path]) -> None:
    """The default model: box, negative click, positive click (timed), undo/redo, save,
    export, brush and eraser, restore of an older version, help panel."""
    expect = sync_api.expect
    url, store = served_auto
    x0, y0, x1, y1 = SAMPLE_CT_BOX
    negative = (x1 - 5.5, (y0 + y1) / 2)  # inside the box's mask, near its right edge
    positive = (x0 + 3.5, y0 + 3.5)  # a box corner the box's mask leaves out
    with sync_api.sync_playwright() as pw:
        browser, page, errors = _open_browser(pw)
        page.goto(url.split("?")[0])  # without the token: the app asks for it
        expect(page.locator("#login")).to_be_visible()
        status = _open_sample_ct(sync_api, page, url)
        assert "token" not in page.url  # the token moved into a cookie
        for tool in ("box", "positive_click", "negative_click", "scribble"):
            expect(page.locator(f"[data-tool={tool}]")).to_have_attribute("aria-disabled", "false")
        tools = page.evaluate(f"() => {APP}.model.tools")
        assert tools["positive_click"]["enabled"] and tools["negative_click"]["enabled"], tools

        start = time.perf_counter()
        _draw_box(page, SAMPLE_CT_BOX)
        _wait_for_mask(page, 0)
        first = _label_count(page)
        assert _pixel(page, *negative) == 1 and _pixel(page, *positive) == 0
        page.mouse.click(*_to_screen(page, *negative), button="right")  # negative click
        _wait_for_mask(page, 1)
        second = _label_count(page)
        page.locator("[data-tool=positive_click]").click()
        page.mouse.click(*_to_screen(page, *positive))
        _wait_for_mask(page, 2)
        elapsed = time.perf_counter() - start
        assert elapsed < MAX_BOX_TO_SECOND_CORRECTION_S, (
            f"box to second corrected mask took {elapsed:.2f} s "
            f"(limit {MAX_BOX_TO_SECOND_CORRECTION_S} s)"
        )
        print(f"box -> second correction shown: {elapsed:.2f} s")
        third = _label_count(page)
        assert first > 50, first
        assert _pixel(page, *negative) == 0, "the negative click left its pixel in the mask"
        assert _pixel(page, *positive) == 1, "the positive click did not add its pixel"
        assert len({first, second, third}) == 3, (first, second, third)
        expect(status).to_contain_text("mask:")
        expect(page.locator("#latency")).to_contain_text("ms")
        _write_screenshot(page)
        page.locator("#canvas").focus()
        page.keyboard.press("Control+z")
        assert _label_count(page) == second
        page.keyboard.press("Control+z")
        assert _label_count(page) == first
        page.keyboard.press("Control+y")
        page.keyboard.press("Control+Shift+z")
        assert _label_count(page) == third

        page.locator("#save").click()
        expect(status).to_contain_text("saved version 1", timeout=30_000)
        expect(page.locator("#versions li")).to_have_count(1)
        v1 = _client_labels(page)
        with page.expect_download() as download:
            page.locator("#export").click()
        # the export default is the image's own format: DICOM -> DICOM-SEG
        assert download.value.suggested_filename == "CT_small_labels_v1.dcm"

        # brush: a stroke away from the mask adds pixels; the eraser across the mask removes
        page.locator("[data-tool=brush]").click()
        _stroke(page, (12.5, 12.5), (30.5, 12.5))
        painted = _label_count(page)
        assert painted > third + 18 * 4, (third, painted)
        assert _pixel(page, 20.5, 12.5) == 1
        page.locator("[data-tool=eraser]").click()
        _stroke(page, (x0 + 4.5, (y0 + y1) / 2), (x1 - 4.5, (y0 + y1) / 2))
        erased = _label_count(page)
        assert erased < painted - 10, (painted, erased)
        assert _pixel(page, (x0 + x1) / 2, (y0 + y1) / 2) == 0
        page.locator("#save").click()
        expect(status).to_contain_text("saved version 2", timeout=30_000)
        v2 = _client_labels(page)

        # restore version 1: saved again as version 3, shown in the viewer
        page.locator("#versions li[data-version='1'] button").click()
        expect(status).to_contain_text("restored version 1 as version 3", timeout=30_000)
        expect(page.locator("#versions li")).to_have_count(3)
        expect(page.locator("#versions li").first).to_have_attribute("data-version", "3")
        assert np.array_equal(_client_labels(page), v1)

        # help: "?" opens the keyboard shortcuts, Esc closes; so do the ? and Close buttons
        help_panel = page.locator("#help")
        expect(help_panel).to_be_hidden()
        page.locator("#canvas").focus()
        page.keyboard.press("?")
        expect(help_panel).to_be_visible()
        for text in ("Keyboard and mouse", "negative click", "undo, redo", "brush, eraser"):
            expect(help_panel).to_contain_text(text)
        page.keyboard.press("Escape")
        expect(help_panel).to_be_hidden()
        page.locator("#help-btn").click()
        expect(help_panel).to_be_visible()
        page.locator("#help-close").click()
        expect(help_panel).to_be_hidden()
        assert not errors, errors
        browser.close()

    saved = {p.name: load_label(p).array for p in (store / "labels").rglob("v000?.png")}
    assert sorted(saved) == ["v0001.png", "v0002.png", "v0003.png"]
    assert np.array_equal(saved["v0001.png"].ravel(), v1)
    assert np.array_equal(saved["v0002.png"].ravel(), v2)
    assert np.array_equal(saved["v0003.png"], saved["v0001.png"])
    ys, xs = np.nonzero(saved["v0001.png"])
    assert xs.min() >= x0 - 1 and xs.max() <= x1 + 1 and ys.min() >= y0 - 1 and ys.max() <= y1 + 1
    from PIL import Image as PILImage

    with PILImage.open(SCREENSHOT) as shot:
        assert shot.format == "PNG" and shot.size == (1360, 820)


def test_litemedsam_box_and_click_in_chromium(sync_api: Any, served: tuple[str, Path]) -> None:
    """LiteMedSAM: scribbles are greyed out with the reason; a box gives a mask inside it;
    clicks are accepted (it was trained on boxes, so they rarely help)."""
    expect = sync_api.expect
    url, _ = served
    with sync_api.sync_playwright() as pw:
        browser, page, errors = _open_browser(pw)
        status = _open_sample_ct(sync_api, page, url)
        scribble = page.locator("[data-tool=scribble]")
        expect(scribble).to_have_attribute("aria-disabled", "true")
        assert "does not accept scribble" in scribble.get_attribute("title")
        for tool in ("positive_click", "negative_click"):
            expect(page.locator(f"[data-tool={tool}]")).to_have_attribute("aria-disabled", "false")
        expect(page.locator("#refine")).not_to_be_checked()

        _draw_box(page, SAMPLE_CT_BOX)
        _wait_for_mask(page, 0)
        mask = _client_labels(page).reshape(page.evaluate(f"() => {APP}.image.shape"))
        ys, xs = np.nonzero(mask)
        x0, y0, x1, y1 = SAMPLE_CT_BOX
        assert len(xs) > 50
        assert (
            xs.min() >= x0 - 1 and xs.max() <= x1 + 1 and ys.min() >= y0 - 1 and ys.max() <= y1 + 1
        )
        page.mouse.click(*_to_screen(page, x1 - 5.5, (y0 + y1) / 2), button="right")
        _wait_for_mask(page, 1)
        expect(status).to_contain_text("mask:")
        expect(status).not_to_have_class("error")
        _check_view_mapping_matches_server(page)
        assert not errors, errors
        browser.close()


def test_scribble_on_a_volume_slice_in_chromium(
    sync_api: Any, served_auto: tuple[str, Path]
) -> None:
    """Default model: a positive scribble on the phantom's middle slice segments the ball
    there; a negative scribble across it removes pixels."""
    from .conftest import PHANTOM_CENTRE

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
        assert page.evaluate(f"() => {APP}.indices[{APP}.view]") == z
        _stroke(page, (cx - 4, cy), (cx + 4, cy + 1))
        first = _wait_for_labels(page, 0)
        assert first > 20
        # a negative (right-button) scribble over the ball's lower half
        _stroke(page, (cx - 6, cy + 4), (cx + 6, cy + 4), button="right")
        second = _wait_for_labels(page, first)
        assert 0 < second < first
        assert not errors, errors
        browser.close()


def test_api_docs_render_offline_in_chromium(sync_api: Any, served: tuple[str, Path]) -> None:
    """/docs shows the endpoints with Swagger UI from the package; requests that leave the
    machine are blocked, so a page that needs a CDN fails here."""
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


class _LiverHead:
    """Scripted text head for the sample CT: "liver" is a fixed rectangle (presence 0.9),
    every other target is absent (presence 0.1)."""

    threshold = 0.5
    box = (slice(40, 70), slice(30, 60))

    def __init__(self, lite: Any) -> None:
        self.lite = lite

    def vector(self, phrases: list[str]) -> np.ndarray:
        return np.full(384, 1.0 if phrases[0] == "liver" else 0.0, np.float32)

    def decode(self, embedding: Any, vectors: np.ndarray) -> Any:
        from medseg.models.base import Decoded

        h, w = embedding.original_size
        mask = np.zeros((h, w), bool)
        mask[self.box] = True
        hit = vectors[:, 0] > 0
        logits = np.where(hit[:, None, None] & mask, 8.0, -8.0)[:, None].astype(np.float32)
        return Decoded(logits=logits, scores=np.where(hit, 0.9, 0.1)[:, None].astype(np.float32))


def test_text_box_in_chromium(
    sync_api: Any, served: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The text box: a found target is drawn; a target not in the image and an unknown
    name are reported in the status line, nothing drawn."""
    monkeypatch.setattr("medseg.inference.text.text_decoder", lambda pred, lite: _LiverHead(lite))
    expect = sync_api.expect
    url, _ = served
    with sync_api.sync_playwright() as pw:
        browser, page, errors = _open_browser(pw)
        status = _open_sample_ct(sync_api, page, url)
        page.fill("#text-prompt", "liver")
        page.press("#text-prompt", "Enter")
        _wait_for_mask(page, 0)
        mask = _client_labels(page).reshape(page.evaluate(f"() => {APP}.image.shape")) > 0
        want = np.zeros_like(mask)
        want[_LiverHead.box] = True
        np.testing.assert_array_equal(mask, want)
        expect(status).to_contain_text("mask: 900 px")
        page.click("#accept")
        page.fill("#text-prompt", "spleen")
        page.click("#text-form button")
        expect(status).to_contain_text('"spleen" not found in this image (presence 0.10)')
        assert _label_count(page) == 900
        page.fill("#text-prompt", "flux capacitor")
        page.press("#text-prompt", "Enter")
        expect(status).to_contain_text("unknown target 'flux capacitor'")
        assert not errors, errors
        browser.close()
