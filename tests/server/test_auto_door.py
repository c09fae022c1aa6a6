"""The server's automatic masks come through the one prediction door: its Auto endpoint
(and MONAI Label's ``segmentation`` model) give, pixel for pixel, what
``Predictor(model, auto=MODEL_DIR)`` gives for the same image (issue 14)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import auto_model_helpers as helpers  # tests/_support (pytest's pythonpath)
import numpy as np
import pytest
from fastapi.testclient import TestClient

from medseg.inference.predictor import Predictor
from medseg.io import load, save
from medseg.io.image import Image
from medseg.server.app import create_app
from medseg.server.config import ServerConfig
from medseg.server.encoding import rle_decode

from .conftest import BASE_URL, Api

pytestmark = pytest.mark.slow  # trains a tiny model (about 10 s)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model folder, datastore with two 2D images)."""
    root = tmp_path_factory.mktemp("auto_door")
    data = helpers.write_two_class_dataset(root / "ds")
    model_dir = helpers.train_tiny_model(data, root / "model", iterations=60)
    for i, seed in enumerate((11, 12)):
        image, _ = helpers.two_class_case(np.random.default_rng(seed), (40, 48))
        save(Image(image), root / "store" / f"case{i}.png")
    return model_dir, root / "store"


@pytest.fixture(scope="module")
def interactive() -> Any:
    from medseg.models.registry import create_model

    return create_model("medseg-interactive", num_threads=1)


@pytest.fixture(scope="module")
def api(setup: tuple[Path, Path], interactive: Any) -> Iterator[Api]:
    model_dir, store = setup
    app = create_app(ServerConfig(data_dir=store, warmup=False, auto_model=model_dir),
                     model=interactive)  # fmt: skip
    with TestClient(app, base_url=BASE_URL) as client:
        yield Api(client, app.state.medseg.token)


def _masks(body: dict) -> dict[int, np.ndarray]:
    return {c["value"]: rle_decode(c["mask"]["shape"], c["mask"]["values"],
                                   c["mask"]["counts"]).astype(bool)
            for c in body["classes"]}  # fmt: skip


@pytest.mark.parametrize("name", ["case0", "case1"])
def test_server_auto_masks_equal_the_predictors(
    api: Api, setup: tuple[Path, Path], interactive: Any, name: str
) -> None:
    model_dir, store = setup
    predictor = Predictor(interactive, auto=model_dir, progress=False)
    predictor.set_image(load(store / f"{name}.png"))
    expected = {k: predictor.predict(label=k).mask for k in (1, 2)}
    assert all(m.any() for m in expected.values())  # the tiny model finds both classes
    image_id = api.image_id(name)
    session = api.session(image_id)
    r = api.post(f"/api/sessions/{session}/auto")
    assert r.status_code == 200, r.text
    got = _masks(r.json())
    assert sorted(got) == [1, 2]
    for k in (1, 2):
        np.testing.assert_array_equal(got[k], expected[k])
    # the server's automatic model is a Predictor given it, in the predictor pool
    state = api.client.app.state.medseg
    pooled = state.pool.get(image_id, "auto", lambda: pytest.fail("not pooled"))
    assert pooled.predictor.auto is state.auto
    np.testing.assert_array_equal(pooled.predictor.segment_all().array,
                                  predictor.segment_all().array)  # fmt: skip


def test_monailabel_segmentation_uses_the_same_door(
    api: Api, setup: tuple[Path, Path], interactive: Any
) -> None:
    import SimpleITK as sitk

    model_dir, store = setup
    r = api.post("/infer/segmentation?image=case1&output=image", data={"params": "{}"})
    assert r.status_code == 200, r.text
    path = store.parent / "door_result.nii.gz"
    path.write_bytes(r.content)
    predictor = Predictor(interactive, auto=model_dir, progress=False)
    predictor.set_image(load(store / "case1.png"))
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    np.testing.assert_array_equal(labels, predictor.segment_all().array)
