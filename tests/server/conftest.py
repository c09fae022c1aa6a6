"""Fixtures for the server tests: one LiteMedSAM model for the whole session, a small
datastore (the sample CT as DICOM, a synthetic NIfTI volume, an RGB PNG) and app factories."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from medseg.io.image import Image
from medseg.io.writers import save
from medseg.server.app import create_app
from medseg.server.config import ServerConfig
from medseg.server.datastore import write_sample_store

BASE_URL = "http://127.0.0.1:8000"
# A ball in the phantom volume: centre (z, y, x) in voxels and radius in mm.
PHANTOM_SHAPE = (3, 40, 48)
PHANTOM_CENTRE = (1, 20, 24)
PHANTOM_RADIUS_MM = 7.0


def phantom() -> Image:
    """A (3, 40, 48) 'CT' volume: a bright ball in soft tissue, 2 mm slices, 1 mm pixels."""
    z, y, x = np.mgrid[tuple(slice(0, n) for n in PHANTOM_SHAPE)]
    cz, cy, cx = PHANTOM_CENTRE
    ball = ((z - cz) * 2.0) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= PHANTOM_RADIUS_MM**2
    rng = np.random.default_rng(0)
    arr = (40 + 8 * rng.standard_normal(z.shape)).astype(np.int16)
    arr[ball] = 300
    return Image(arr, spacing=(2.0, 1.0, 1.0), modality="CT")


def write_store(folder: Path) -> Path:
    """A datastore folder with three images (and files that must not be listed)."""
    write_sample_store(folder)
    save(phantom(), folder / "volumes" / "phantom.nii.gz")
    rgb = np.zeros((40, 52, 3), np.uint8)
    rgb[10:30, 12:40] = (200, 60, 40)
    save(rgb, folder / "photos" / "lesion.png")
    (folder / "labels").mkdir(exist_ok=True)
    save(np.ones((4, 4), np.uint8), folder / "labels" / "not_an_image.png")
    (folder / ".hidden").mkdir()
    save(rgb, folder / ".hidden" / "secret.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="session")
def model() -> Any:
    """LiteMedSAM on the PyTorch backend (no ONNX export in tests), 2 threads; repeated
    inputs (the same image in a fresh app) are embedded once (``encoder_memo``)."""
    import torch
    from encoder_memo import memoize_encoder

    from medseg.models.registry import create_model

    torch.set_num_threads(2)
    return memoize_encoder(create_model("litemedsam", backend="torch", num_threads=2))


@pytest.fixture(scope="session")
def store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("store_template"))


@pytest.fixture()
def store(store_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the datastore for one test."""
    target = tmp_path / "store"
    shutil.copytree(store_template, target, symlinks=True)
    return target


class Api:
    """A TestClient with the bearer token and a few shortcuts."""

    def __init__(self, client: TestClient, token: str | None) -> None:
        self.client = client
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def __getattr__(self, method: str) -> Callable[..., Any]:
        verb = getattr(self.client, method)

        def call(url: str, **kwargs: Any) -> Any:
            headers = {**self.headers, **kwargs.pop("headers", {})}
            return verb(url, headers=headers, **kwargs)

        return call

    def image_id(self, name_part: str) -> str:
        images = self.client.get("/api/images", headers=self.headers).json()
        return next(im["id"] for im in images if name_part in im["name"])

    def session(self, image_id: str, **body: Any) -> str:
        r = self.post("/api/sessions", json={"image_id": image_id, **body})
        assert r.status_code == 201, r.text
        return r.json()["session_id"]


def _factory(model: Any, store: Path, clients: list[TestClient]) -> Callable[..., Api]:
    def make(**overrides: Any) -> Api:
        config = ServerConfig(**{"data_dir": store, "warmup": False, **overrides})
        app = create_app(config, model=model)
        client = TestClient(app, base_url=BASE_URL)
        clients.append(client)
        return Api(client, app.state.medseg.token)

    return make


@pytest.fixture()
def make_api(model: Any, store: Path) -> Iterator[Callable[..., Api]]:
    """Factory: ``make_api(**config_overrides)`` -> :class:`Api` on a fresh datastore copy."""
    clients: list[TestClient] = []
    yield _factory(model, store, clients)
    for c in clients:
        c.close()


@pytest.fixture()
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()


@pytest.fixture(scope="session")
def shared_api(
    model: Any, store_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """One app for all tests that write nothing (so embeddings are computed once)."""
    target = tmp_path_factory.mktemp("shared") / "store"
    shutil.copytree(store_template, target, symlinks=True)
    clients: list[TestClient] = []
    yield _factory(model, target, clients)()
    for c in clients:
        c.close()
