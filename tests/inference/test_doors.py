"""One request, three doors: the same box + click on the same PNG through the Python API
(``medseg.Predictor``), the CLI (``medseg segment``) and the HTTP server
(``POST /api/sessions/{id}/predict``) gives the same mask, pixel for pixel.

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


def _server_mask(png: Path) -> np.ndarray:
    config = ServerConfig(data_dir=png.parent, warmup=False)
    app = create_app(config)
    headers = {"Authorization": f"Bearer {app.state.medseg.token}"}
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:  # runs the lifespan
        assert app.state.medseg.model.name == "litemedsam+interactive"
        images = client.get("/api/images", headers=headers).json()
        image_id = next(im["id"] for im in images if im["name"].endswith("disk.png"))
        r = client.post("/api/sessions", json={"image_id": image_id}, headers=headers)
        assert r.status_code == 201, r.text
        body = {"box": list(BOX), "points": [list(CLICK)], "point_labels": [1]}
        url = f"/api/sessions/{r.json()['session_id']}/predict"
        r = client.post(url, json=body, headers=headers)
    assert r.status_code == 200, r.text
    m = r.json()["mask"]
    return rle_decode(m["shape"], m["values"], m["counts"], np.uint8).astype(bool)


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
