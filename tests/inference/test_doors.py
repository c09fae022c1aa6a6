"""One request, three doors: the same box + click on the same PNG through the Python API
(``medseg.Predictor``), the CLI (``medseg segment``) and the HTTP server
(``POST /api/sessions/{id}/predict``) gives the same mask, pixel for pixel; so does a box +
click on a NIfTI volume stored RAS, which the app shows flipped (the model segments the
slices as the app shows them whichever door the request comes through,
:mod:`medseg.inference.view_frame`; the HTTP API takes and answers view pixels, converted
here as the browser converts them).

All three use the default model (``litemedsam+interactive``; the click sends the request to
medseg-interactive), which takes well under a second per prompt on a 64 x 64 image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import medseg
from medseg.cli.main import main
from medseg.io.image import Image
from medseg.io.orientation import array_to_view, box_to_view, unoriented, view_axes
from medseg.server.app import create_app
from medseg.server.config import ServerConfig
from medseg.server.encoding import rle_decode

BOX = (20.0, 16.0, 48.0, 44.0)  # (x0, y0, x1, y1)
CLICK = (34.0, 30.0)  # (x, y), foreground


def _disk() -> np.ndarray:
    """``(64, 64)`` bool: a disk of radius 12 centred at row 30, column 34."""
    yy, xx = np.mgrid[:64, :64]
    return (yy - 30) ** 2 + (xx - 34) ** 2 <= 12**2


@pytest.fixture(scope="module")
def png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8-bit gray PNG: the disk (200) on a dark background (30), in a datastore folder."""
    img = np.full((64, 64), 30, np.uint8)
    img[_disk()] = 200
    path = tmp_path_factory.mktemp("store") / "disk.png"
    medseg.save(img, path)
    return path


@pytest.fixture(scope="module")
def api_mask(png: Path) -> np.ndarray:
    """The Python API door: ``Predictor().predict(box=..., points=...)``."""
    predictor = medseg.Predictor("default", progress=False)
    predictor.set_image(medseg.load(png))
    result = predictor.predict(box=BOX, points=[CLICK], point_labels=[1])
    assert result.info["model"] == "litemedsam+interactive"
    return result.mask


def _cli_mask(png: Path, out: Path) -> np.ndarray:
    box = ",".join(str(int(v)) for v in BOX)
    click = f"{int(CLICK[0])},{int(CLICK[1])}:1"
    argv = ["segment", str(png), "-o", str(out), "--box", box, "--point", click]
    assert main(argv) == 0
    return medseg.load(out).array.astype(bool)


def _decode(m: dict) -> np.ndarray:
    return rle_decode(m["shape"], m["values"], m["counts"], np.uint8).astype(bool)


def _server_answers(path: Path, bodies: list[dict]) -> list[dict]:
    """The JSON answers of ``POST .../predict`` with each of ``bodies``, in one session on
    the image ``path`` (the only file of its folder) of a fresh app."""
    config = ServerConfig(data_dir=path.parent, warmup=False)
    app = create_app(config)
    headers = {"Authorization": f"Bearer {app.state.medseg.token}"}
    answers = []
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:  # runs the lifespan
        assert app.state.medseg.model.name == "litemedsam+interactive"
        images = client.get("/api/images", headers=headers).json()
        image_id = next(im["id"] for im in images if im["name"].endswith(path.name))
        r = client.post("/api/sessions", json={"image_id": image_id}, headers=headers)
        assert r.status_code == 201, r.text
        url = f"/api/sessions/{r.json()['session_id']}/predict"
        for body in bodies:
            r = client.post(url, json=body, headers=headers)
            assert r.status_code == 200, r.text
            answers.append(r.json())
    return answers


def _server_mask(png: Path) -> np.ndarray:
    body = {"box": list(BOX), "points": [list(CLICK)], "point_labels": [1]}
    return _decode(_server_answers(png, [body])[0]["mask"])


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".png", ".nii.gz"])
def test_api_cli_and_server_give_the_same_mask(
    api_mask: np.ndarray, png: Path, tmp_path: Path, suffix: str
) -> None:
    disk = _disk()
    dice = 2 * (api_mask & disk).sum() / (api_mask.sum() + disk.sum())
    assert api_mask.shape == (64, 64) and dice > 0.95  # a real segmentation of the disk
    cli = _cli_mask(png, tmp_path / f"mask{suffix}")
    assert cli.shape == (64, 64)
    np.testing.assert_array_equal(cli, api_mask)
    if suffix == ".png":  # the server's answer does not depend on the CLI's format
        np.testing.assert_array_equal(_server_mask(png), api_mask)


# A (3, 40, 48) volume stored RAS (NIfTI style): the app shows its slices flipped up-down
# and left-right, so a model that is not flip-equivariant sees other pixels than the array's.
RAS_SHAPE = (3, 40, 48)
BALL = (1, 14, 16)  # (z, y, x) array indices, off centre so that the flip moves it
RAS_BOX = (7.0, 6.0, 27.0, 23.0)  # (x0, y0, x1, y1) on slice 1
RAS_CLICK = (16.0, 14.0)  # (x, y) on slice 1, foreground


def _ras_volume() -> tuple[Image, np.ndarray]:
    """The volume (a bright ellipsoid in noise, direction diag(-1, -1, 1)) and its ball."""
    z, y, x = np.mgrid[tuple(slice(0, n) for n in RAS_SHAPE)]
    cz, cy, cx = BALL
    ball = ((z - cz) * 2.0) ** 2 + (y - cy) ** 2 + ((x - cx) / 1.3) ** 2 <= 7.0**2
    arr = (40 + 8 * np.random.default_rng(3).standard_normal(RAS_SHAPE)).astype(np.int16)
    arr[ball] = 300
    return Image(arr, spacing=(2.0, 1.0, 1.0), direction=np.diag([-1.0, -1.0, 1.0])), ball


@pytest.mark.slow
def test_a_volume_stored_ras_gives_the_same_mask_through_every_door(tmp_path: Path) -> None:
    image, ball = _ras_volume()
    path = tmp_path / "store" / "ras.nii.gz"
    path.parent.mkdir()
    medseg.save(image, path)
    loaded = medseg.load(path)
    assert np.array_equal(loaded.direction, image.direction)
    # the Python API: array indices, one slice (a click) and propagated through the volume
    predictor = medseg.Predictor("default", progress=False)
    predictor.set_image(loaded)
    prompts = {"box": RAS_BOX, "points": [RAS_CLICK], "point_labels": [1], "slice_index": 1}
    api_slice = predictor.predict(**prompts, propagate=False).mask
    api_volume = predictor.predict(**prompts).mask
    assert api_slice.shape == RAS_SHAPE[1:] and api_volume.shape == RAS_SHAPE
    on_slice = ball[1]
    dice = 2 * (api_slice & on_slice).sum() / (api_slice.sum() + on_slice.sum())
    assert dice > 0.9  # a real segmentation of the ball's slice, where the ball is
    # the CLI: the same array indices
    out = tmp_path / "mask.nii.gz"
    box = ",".join(str(int(v)) for v in RAS_BOX)
    click = f"{int(RAS_CLICK[0])},{int(RAS_CLICK[1])},1:1"
    assert main(["segment", str(path), "-o", str(out), "--box", box, "--point", click,
                 "--slice", "1"]) == 0  # fmt: skip
    cli = medseg.load(out)
    np.testing.assert_array_equal(cli.array.astype(bool), api_volume)
    assert np.array_equal(cli.direction, image.direction)
    # the HTTP API: the browser sends view pixels of the axial view and turns answers back
    ax = view_axes(loaded, "axial")
    col, row, _ = array_to_view(loaded, "axial", *RAS_CLICK, 1)
    body = {"view": "axial", "slice_index": 1, "box": list(box_to_view(loaded, "axial", RAS_BOX)),
            "points": [[col, row]], "point_labels": [1]}  # fmt: skip
    one, propagated = _server_answers(path, [body, {**body, "propagate": True}])
    server_slice = unoriented(_decode(one["mask"])[None], ax)[0]
    np.testing.assert_array_equal(server_slice, api_slice)
    lo, hi = propagated["propagated"]["start"], propagated["propagated"]["stop"]
    view_volume = np.zeros(RAS_SHAPE, bool)  # this view's slices are the array's z slices
    view_volume[lo : hi + 1] = _decode(propagated["propagated"]["mask"])
    np.testing.assert_array_equal(unoriented(view_volume, ax), api_volume)
