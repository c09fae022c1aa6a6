"""The web app with a ``medseg auto`` model: ``POST /api/sessions/{id}/auto`` (per-class
first masks), corrections sent with the current mask (``mask_input='mask'``), and the model
folder given as ``--model``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import auto_model_helpers as helpers  # tests/_support (pytest's pythonpath)
import numpy as np
import pytest
from fastapi.testclient import TestClient

from medseg.automatic.segmenter import AutoSegmenter
from medseg.errors import ModelError
from medseg.io import save
from medseg.io.image import Image
from medseg.server.app import create_app
from medseg.server.config import ServerConfig
from medseg.server.encoding import rle_decode, rle_encode

from .conftest import BASE_URL, Api


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    """(model folder, datastore with one 2D image, that image)."""
    root = tmp_path_factory.mktemp("auto_api")
    data = helpers.write_two_class_dataset(root / "ds")
    model_dir = helpers.train_tiny_model(data, root / "model", iterations=80)
    image, _ = helpers.two_class_case(np.random.default_rng(7))
    save(Image(image), root / "store" / "slide.png")
    return model_dir, root / "store", image


@pytest.fixture(scope="module")
def interactive() -> Any:
    from medseg.models.registry import create_model

    return create_model("medseg-interactive", num_threads=1)


@pytest.fixture(scope="module")
def api(setup: tuple[Path, Path, np.ndarray], interactive: Any) -> Iterator[Api]:
    model_dir, store, _ = setup
    config = ServerConfig(data_dir=store, warmup=False, auto_model=model_dir)
    app = create_app(config, model=interactive)
    with TestClient(app, base_url=BASE_URL) as client:
        yield Api(client, app.state.medseg.token)


def _mask(m: dict) -> np.ndarray:
    assert m["encoding"] == "rle"
    return rle_decode(m["shape"], m["values"], m["counts"]).astype(bool)


def _auto(api: Api) -> tuple[str, dict]:
    session = api.session(api.image_id("slide"))
    r = api.post(f"/api/sessions/{session}/auto", json={"encoding": "rle"})
    assert r.status_code == 200, r.text
    return session, r.json()


def test_info_lists_the_auto_model(api: Api, setup: tuple[Path, Path, np.ndarray]) -> None:
    info = api.get("/api/info").json()
    auto = info["auto_model"]
    assert auto["name"] == "model" and auto["labels"] == {"1": "disk", "2": "square"}
    assert auto["dims"] == 2 and auto["folds"] == ["0"]
    assert info["model"]["name"] == "medseg-interactive"
    assert "/api/sessions/{session_id}/auto" in api.client.get("/openapi.json").json()["paths"]


def test_auto_returns_per_class_masks(api: Api, setup: tuple[Path, Path, np.ndarray]) -> None:
    model_dir, _, image = setup
    session, body = _auto(api)
    assert body["model"] == "model" and body["shape"] == list(image.shape)
    expected = AutoSegmenter(model_dir).segment(Image(image)).array
    assert [(c["value"], c["name"]) for c in body["classes"]] == [(1, "disk"), (2, "square")]
    for c in body["classes"]:
        mask = _mask(c["mask"])
        assert np.array_equal(mask, expected == c["value"]) and c["voxels"] == mask.sum() > 0
    again = api.post(f"/api/sessions/{session}/auto").json()  # no body: RLE; cached
    assert again["model_ms"] == 0.0 and again["classes"] == body["classes"]
    png = api.post(f"/api/sessions/{session}/auto", json={"encoding": "png"}).json()
    assert png["classes"][0]["mask"]["encoding"] == "png"


def test_monailabel_segmentation_model(api: Api, setup: tuple[Path, Path, np.ndarray]) -> None:
    """The auto model as MONAI Label's ``segmentation`` model (docs/monailabel.md)."""
    import SimpleITK as sitk

    model_dir, store, image = setup
    models = api.get("/info/").json()["models"]
    assert models["segmentation"]["type"] == "segmentation"
    assert models["segmentation"]["labels"] == {"disk": 1, "square": 2}
    r = api.post("/infer/segmentation?image=slide&output=image", data={"params": "{}"})
    assert r.status_code == 200, r.text
    path = store.parent / "monailabel_result.nii.gz"
    path.write_bytes(r.content)
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    expected = AutoSegmenter(model_dir).segment(Image(image)).array
    assert labels.shape == image.shape and np.array_equal(labels, expected)
    assert set(np.unique(labels)) == {0, 1, 2}


def test_corrections_start_from_the_current_mask(
    api: Api, setup: tuple[Path, Path, np.ndarray], interactive: Any
) -> None:
    """The uploaded mask is the model's ``mask_input``: the server's answer is, pixel for
    pixel, the Predictor's with that mask (and without it, the Predictor's without)."""
    from medseg.inference.predictor import Predictor
    from medseg.inference.prompt_input import binary_logits

    session, body = _auto(api)
    disk = _mask(body["classes"][0]["mask"])
    ys, xs = np.nonzero(disk)
    cx, cy = round(float(xs.mean())), round(float(ys.mean()))
    req = {"points": [[cx, cy]], "point_labels": [0], "label": 1, "mask_input": "mask",
           "mask": rle_encode(disk)}  # fmt: skip
    r = api.post(f"/api/sessions/{session}/predict", json=req)
    assert r.status_code == 200, r.text
    fixed = _mask(r.json()["mask"])
    predictor = Predictor(interactive, progress=False)
    predictor.set_image(Image(setup[2]))
    click = {"points": [(cx, cy)], "point_labels": [0]}
    expected = predictor.predict(**click, mask_input=binary_logits(disk)).mask
    np.testing.assert_array_equal(fixed, expected)
    # the negative click removed the centre and only removed: the rest of the disk stays
    assert not fixed[cy, cx] and fixed.any() and not (fixed & ~disk).any()
    plain = api.post(f"/api/sessions/{session}/predict", json={**req, "mask_input": "none",
                     "mask": None}).json()  # fmt: skip
    np.testing.assert_array_equal(_mask(plain["mask"]), predictor.predict(**click).mask)
    assert not _mask(plain["mask"]).any()  # a lone negative click, no mask: nothing
    bad = api.post(f"/api/sessions/{session}/predict", json={**req, "mask": rle_encode(disk[1:])})
    assert bad.status_code == 422 and "prompted slice" in bad.json()["detail"]
    missing = api.post(f"/api/sessions/{session}/predict", json={**req, "mask": None})
    assert missing.status_code == 422 and "mask_input='mask'" in missing.json()["detail"]


def test_without_auto_model(setup: tuple[Path, Path, np.ndarray], interactive: Any) -> None:
    app = create_app(ServerConfig(data_dir=setup[1], warmup=False), model=interactive)
    with TestClient(app, base_url=BASE_URL) as client:
        api = Api(client, app.state.medseg.token)
        assert api.get("/api/info").json()["auto_model"] is None
        session = api.session(api.image_id("slide"))
        r = api.post(f"/api/sessions/{session}/auto")
        assert r.status_code == 404 and "--auto-model" in r.json()["detail"]


def test_model_folder_as_model_and_bad_folder(
    setup: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    model_dir, store, _ = setup
    config = ServerConfig(data_dir=store, warmup=False, model=str(model_dir),
                          model_options=(("num_threads", 1),))  # fmt: skip
    app = create_app(config)
    with TestClient(app, base_url=BASE_URL) as client:  # the lifespan loads the model
        api = Api(client, app.state.medseg.token)
        info = api.get("/api/info").json()
        assert info["model"]["name"] == "litemedsam+interactive"  # the default with a model folder
        assert info["auto_model"]["labels"] == {"1": "disk", "2": "square"}
        _auto(api)
    with pytest.raises(ModelError, match=r"no plans\.json"):
        create_app(ServerConfig(data_dir=store, auto_model=tmp_path))
