"""In Chromium: the app shows and copies the array indices the CLI takes (a box drawn on a
flipped RAS volume, typed into ``medseg segment``, gives the app's mask), and the app's
state after Esc, its export default, size text and first label colour (issue 18).

Uses the harness of browser_harness.py (Debian's Chromium driven by Playwright; skips without
them unless ``MEDSEG_REQUIRE_BROWSER=1``).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import medseg.io as mio
from medseg.cli.main import main
from medseg.io.image import Image
from medseg.io.orientation import VIEWS, view_axes, view_shape, view_to_array

from . import browser_harness as harness
from .browser_harness import (
    APP,
    _client_labels,
    _draw_box,
    _open_browser,
    _serve,
    _to_screen,
    _wait_for_mask,
    _wait_until,
)

sync_api = harness.sync_api  # fixtures of the harness
served = harness.served
pytestmark = pytest.mark.slow  # a real Chromium and model per test

RAS_SHAPE = (3, 40, 48)
BALL = (1, 14, 16)  # (z, y, x) array indices: off centre, so a flip moves it


def _ras_volume() -> Image:
    """A CT-like (3, 40, 48) volume stored RAS (NIfTI style): the app shows it flipped."""
    z, y, x = np.mgrid[tuple(slice(0, n) for n in RAS_SHAPE)]
    cz, cy, cx = BALL
    ball = ((z - cz) * 2.0) ** 2 + (y - cy) ** 2 + ((x - cx) / 1.3) ** 2 <= 7.0**2
    arr = (40 + 8 * np.random.default_rng(3).standard_normal(RAS_SHAPE)).astype(np.int16)
    arr[ball] = 300
    direction = np.diag([-1.0, -1.0, 1.0])
    return Image(arr, spacing=(2.0, 1.0, 1.0), direction=direction, modality="CT")


@pytest.fixture()
def served_ras(model: Any, store: Path) -> Any:
    """LiteMedSAM app over the test datastore plus ``volumes/ras.nii.gz``."""
    mio.save(_ras_volume(), store / "volumes" / "ras.nii.gz")
    yield from _serve(model, store)


def _open(sync_api: Any, page: Any, url: str, label: str) -> Any:
    page.goto(url)
    status = page.locator("#status-msg")
    sync_api.expect(status).to_contain_text("ready", timeout=60_000)
    if page.evaluate(f"() => {APP}.image.name") != label:
        page.select_option("#image-select", label=label)
    sync_api.expect(status).to_contain_text(f"ready: {label}", timeout=60_000)
    return status


def _run_cli(line: str, store: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    """Run the app's "copy as CLI" line (from the datastore folder), output to ``out``."""
    argv = shlex.split(line)
    assert argv[:2] == ["medseg", "segment"]
    argv[argv.index("-o") + 1] = str(out)
    monkeypatch.chdir(store)
    assert main([*argv[1:], "--backend", "torch"]) == 0
    return mio.load_label(out.with_name(out.name + ".nii.gz")).array


def test_copied_cli_box_gives_the_apps_mask(
    sync_api: Any, served_ras: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Box drawn in the flipped axial view -> array indices in the readout and the copied
    command -> ``medseg segment`` writes the same propagated mask as the app."""
    expect = sync_api.expect
    url, store = served_ras
    cz, cy, cx = BALL
    with sync_api.sync_playwright() as pw:
        browser, page, errors = _open_browser(pw)
        status = _open(sync_api, page, url, "volumes/ras.nii.gz")
        axes = page.evaluate(f"() => {APP}.image.view_axes.axial")
        assert axes == {"depth": 0, "rows": 1, "cols": 2, "flip_rows": True, "flip_cols": True}
        assert page.evaluate(f"() => {APP}.indices.axial") == cz
        expect(page.locator("#slice-label")).to_have_text("axial · z 1 (0–2)")
        # the ball's centre voxel (x 16, y 14) is shown at view pixel (47 - 16, 39 - 14)
        page.mouse.move(*_to_screen(page, 31.5, 25.5))
        expect(page.locator("#cursor")).to_have_text("x 16  y 14  z 1")
        expect(page.locator("#cli-copy")).to_be_disabled()

        _draw_box(page, (22.5, 16.5, 40.5, 34.5))  # view pixels 22..40, 16..34
        _wait_for_mask(page, 0)
        line = page.locator("#cli-line").inner_text()
        assert line == (
            'medseg segment "volumes/ras.nii.gz" -o seg --model litemedsam '
            "--box 7,5,25,23 --slice 1"
        )
        expect(page.locator("#cli-copy")).to_be_enabled()
        page.locator("#propagate").click()
        expect(status).to_contain_text("slices", timeout=60_000)
        _wait_until(page, "!a.inflight && !a.prompt")
        app_mask = _client_labels(page).reshape(RAS_SHAPE)
        assert page.locator("#cli-line").inner_text() == line  # the propagated prompt
        assert not errors, errors
        browser.close()

    cli_mask = _run_cli(line, store, tmp_path / "seg", monkeypatch)
    assert cli_mask.shape == RAS_SHAPE and app_mask[cz, cy, cx] == 1
    assert int((app_mask > 0).sum()) > 100
    np.testing.assert_array_equal(cli_mask, app_mask)
    ys, xs = np.nonzero(app_mask[cz])
    assert xs.min() >= 7 - 1 and xs.max() <= 25 + 1 and ys.min() >= 5 - 1 and ys.max() <= 23 + 1


def _check_to_array_matches_python(page: Any) -> None:
    """LabelVolume.toArray (the readout and the CLI line) = io.orientation.view_to_array."""
    shape = (2, 3, 4)
    directions = [np.eye(3), np.diag([-1.0, -1.0, 1.0]),
                  np.array([[0, 0, -1.0], [1.0, 0, 0], [0, -1.0, 0]])]  # fmt: skip
    for direction in directions:
        image = Image(np.zeros(shape), direction=direction)
        axes = {v: view_axes(image, v) for v in VIEWS}
        for view in VIEWS:
            depth, rows, cols = view_shape(image, view)
            want = [
                [int(v) for v in view_to_array(image, view, c, r, i)]
                for i in range(depth) for r in range(rows) for c in range(cols)
            ]  # fmt: skip
            got = page.evaluate(
                "async ([shape, axes, view, dims]) => {"
                " const { LabelVolume } = await import('/static/volume.js');"
                " const vol = new LabelVolume(shape, axes); const out = [];"
                " for (let i = 0; i < dims[0]; i++) for (let r = 0; r < dims[1]; r++)"
                " for (let c = 0; c < dims[2]; c++) out.push(vol.toArray(view, c, r, i));"
                " return out; }",
                [list(shape), axes, view, [depth, rows, cols]],
            )
            assert got == want, (direction.tolist(), view)


def test_discard_export_default_and_size_text(sync_api: Any, served: tuple[str, Path]) -> None:
    """Esc discards the only object: no unsaved changes, the image switch goes through
    without a question. Export defaults to the image's format; one size text; the first
    label colour is cyan (visible on pink H&E)."""
    expect = sync_api.expect
    url, _ = served
    with sync_api.sync_playwright() as pw:
        browser, page, errors = _open_browser(pw)
        dialogs: list[str] = []

        def dismiss(d: Any) -> None:
            dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", dismiss)
        status = _open(sync_api, page, url, "photos/lesion.png")
        expect(page.locator("#export-format")).to_have_value("png")
        size = page.evaluate(f"() => {APP}.viewer.corners.left[1]")
        assert size.endswith(" · 52 × 40"), size  # modality · width × height
        expect(status).to_contain_text(f"ready: photos/lesion.png — {size} (embedding")
        assert page.evaluate(f"() => {APP}.labels.map((l) => l.color)") == ["#00e5ff"]
        save = page.locator("#save")
        expect(save).to_have_text("Save version")

        _draw_box(page, (10.5, 8.5, 41.5, 31.5))
        _wait_for_mask(page, 0)
        expect(save).to_have_text("Save version •")
        line = page.locator("#cli-line").inner_text()
        assert (
            line == 'medseg segment "photos/lesion.png" -o seg --model litemedsam --box 10,8,41,31'
        )
        page.locator("#cli-copy").click()  # clipboard, or the line selected without one
        expect(status).to_contain_text("the medseg segment command")
        page.locator("#canvas").focus()
        page.keyboard.press("Escape")
        expect(status).to_have_text("object discarded")
        expect(save).to_have_text("Save version")
        assert page.evaluate(f"() => {APP}.dirty") is False
        expect(page.locator("#cli-copy")).to_be_disabled()

        page.select_option("#image-select", label="volumes/phantom.nii.gz")
        expect(status).to_contain_text("ready: volumes/phantom.nii.gz", timeout=60_000)
        assert dialogs == []
        expect(page.locator("#export-format")).to_have_value("nifti")
        size = page.evaluate(f"() => {APP}.viewer.corners.left[1]")
        assert size == "unknown · 48 × 40 × 3", size  # NIfTI keeps no modality
        expect(status).to_contain_text(f"— {size} (embedding")

        # unsaved changes: the switch asks; declining keeps the image and says why
        _draw_box(page, (14.5, 10.5, 34.5, 30.5))
        _wait_for_mask(page, 0)
        page.select_option("#image-select", label="sample_ct/CT_small.dcm")
        expect(status).to_contain_text("kept volumes/phantom.nii.gz open")
        assert dialogs == ["Discard the unsaved changes of this image?"]
        expect(page.locator("#image-select")).to_have_value(page.evaluate(f"() => {APP}.image.id"))
        page.locator("#canvas").focus()
        page.keyboard.press("Escape")
        page.select_option("#image-select", label="sample_ct/CT_small.dcm")
        expect(status).to_contain_text("ready: sample_ct/CT_small.dcm", timeout=60_000)
        assert len(dialogs) == 1
        expect(page.locator("#export-format")).to_have_value("dicom-seg")
        _check_to_array_matches_python(page)
        assert not errors, errors
        browser.close()
