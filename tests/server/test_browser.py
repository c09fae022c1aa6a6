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

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medseg.data.samples import SAMPLE_CT_BOX
from medseg.io.readers import load_label

from . import browser_harness as harness
from .browser_harness import (
    APP,
    MAX_BOX_TO_SECOND_CORRECTION_S,
    SCREENSHOT,
    _check_view_mapping_matches_server,
    _client_labels,
    _draw_box,
    _label_count,
    _open_browser,
    _open_sample_ct,
    _pixel,
    _stroke,
    _to_screen,
    _wait_for_labels,
    _wait_for_mask,
    _write_screenshot,
)

sync_api = harness.sync_api  # fixtures of the harness
served = harness.served
served_auto = harness.served_auto
default_model = harness.default_model
pytestmark = pytest.mark.slow  # a real Chromium per test


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
