"""Text prompts in the MONAI Label-compatible API: ``params.text`` on ``POST /infer/{model}``
and the ``text`` / ``text_labels`` fields of ``GET /info/``, through monailabel's own
``MONAILabelClient`` against a live server with the default model (litemedsam+interactive,
whose LiteMedSAM encoder the text head decodes).

Images: the built-in sample CT (``CT_small``, 2D ``(128, 128)``, where the text head finds
``lung`` and ``spinal cord``) and a volume of three copies of it. Every result is compared
voxel by voxel with :meth:`medseg.Predictor.predict` on the same image.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from monailabel_helpers import free_port, live_server  # tests/_support (pytest's pythonpath)

from medseg.errors import InputError
from medseg.server.monailabel.params import parse_params

client_mod = pytest.importorskip("monailabel.client.client")

PHRASES = ["lung", "spinal cord"]


@pytest.fixture(scope="module")
def text_model(default_model: Any) -> Any:
    """The default promptable model (it takes text prompts): the session's
    ``default_model`` (tests/conftest.py)."""
    return default_model


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"ct": the sample CT (DICOM), "stack": a (3, 128, 128) NIfTI of three copies}``."""
    from medseg.data.samples import sample_path
    from medseg.io import load
    from medseg.io.image import Image
    from medseg.io.writers import save

    ct = load(sample_path())
    stack = Image(np.stack([ct.array] * 3), spacing=(2.0, *ct.spacing), modality="CT")
    folder = tmp_path_factory.mktemp("text_images")
    return {"ct": Path(sample_path()), "stack": save(stack, folder / "stack.nii.gz")}


@pytest.fixture(scope="module")
def server(
    text_model: Any, tmp_path_factory: pytest.TempPathFactory, images: dict[str, Path]
) -> Iterator[dict[str, Any]]:
    """A live ``medseg serve`` (token on) over the sample store, with the volume uploaded as
    ``stack`` and the sample CT as ``ct``; yields ``{"client": factory, "tmp": folder}``."""
    from medseg.server.app import create_app
    from medseg.server.config import ServerConfig
    from medseg.server.datastore import write_sample_store

    store = write_sample_store(tmp_path_factory.mktemp("text_store"))
    tmp = tmp_path_factory.mktemp("text_client")
    config = ServerConfig(data_dir=store, warmup=False, port=free_port())
    app = create_app(config, model=text_model)
    token = app.state.medseg.token

    def client() -> Any:
        c = client_mod.MONAILabelClient(url, tmpdir=str(tmp), client_id="user-text")
        c.update_auth({"token_type": "Bearer", "access_token": token})
        return c

    with live_server(app) as url:
        assert client().upload_image(str(images["stack"]), "stack")["image"] == "stack"
        assert client().upload_image(str(images["ct"]), "ct")["image"] == "ct"
        yield {"client": client, "tmp": tmp}


def _predictor(model: Any, path: Path) -> Any:
    from medseg import Predictor
    from medseg.io import load

    p = Predictor(model, progress=False)
    p.set_image(load(path))
    return p


def _labels(masks: np.ndarray) -> np.ndarray:
    """Masks ``(N, ...)`` -> uint8 label map, value ``i + 1`` for mask ``i`` (later wins)."""
    out = np.zeros(masks.shape[1:], np.uint8)
    for value, mask in enumerate(masks, start=1):
        out[mask] = value
    return out


def _infer(server: dict[str, Any], model: str, image: str, params: dict[str, Any]) -> tuple:
    """(label array as read back, result JSON) of ``MONAILabelClient.infer``."""
    import SimpleITK as sitk

    result_file, result = server["client"]().infer(model, image, params)
    return sitk.GetArrayFromImage(sitk.ReadImage(result_file)), result


def test_info_says_which_models_take_text(server: dict[str, Any]) -> None:
    from medseg.prompts.text import list_targets

    models = server["client"]().info()["models"]
    names = [t.name for t in list_targets()]
    for name in ("deepgrow", "deepedit"):
        assert models[name]["text"] is True and models[name]["text_labels"] == names
        assert models[name]["description"].endswith("or name targets with params.text")
    assert models["deepgrow"]["type"] == "deepgrow" and models["deepgrow"]["labels"] == []
    assert models["deepedit"]["type"] == "deepedit" and models["deepedit"]["config"] == {}
    assert {"lung", "spinal cord", "liver"} <= set(names)


def test_text_on_2d_image_equals_predictor(server: dict[str, Any], text_model: Any,
                                           images: dict[str, Path]) -> None:  # fmt: skip
    expected = _predictor(text_model, images["ct"]).predict(text="lung").mask
    arr, result = _infer(server, "deepgrow", "ct", {"text": "lung"})
    assert expected.sum() > 100 and arr.shape == (128, 128)
    np.testing.assert_array_equal(arr, expected.astype(np.uint8))
    assert result["label_names"] == {"lung": 1} and result["text"][0]["found"] is True


def test_several_phrases_give_one_label_each(server: dict[str, Any], text_model: Any,
                                             images: dict[str, Path]) -> None:  # fmt: skip
    pred = _predictor(text_model, images["ct"]).predict(texts=PHRASES)
    arr, result = _infer(server, "deepgrow", "ct", {"text": PHRASES})
    assert result["label_names"] == {"lung": 1, "spinal cord": 2}
    assert set(np.unique(arr)) == {0, 1, 2}
    np.testing.assert_array_equal(arr, _labels(pred.mask))
    assert [t["text"] for t in result["text"]] == PHRASES


def test_text_with_a_click_equals_predictor(server: dict[str, Any], text_model: Any,
                                            images: dict[str, Path]) -> None:  # fmt: skip
    p = _predictor(text_model, images["ct"])
    y, x = (int(v) for v in np.argwhere(p.predict(text="lung").mask)[0])
    expected = p.predict(text="lung", points=[(x, y)], point_labels=[1]).mask
    arr, result = _infer(server, "deepgrow", "ct",
                         {"text": "lung", "foreground": [[x, y]], "background": []})  # fmt: skip
    np.testing.assert_array_equal(arr, expected.astype(np.uint8))
    assert result["label_names"] == {"lung": 1} and result["ignored_clicks"] == 0


@pytest.mark.slow
def test_text_on_a_volume_mirrors_predictor(server: dict[str, Any], text_model: Any,
                                            images: dict[str, Path]) -> None:  # fmt: skip
    """deepedit: the whole volume (texts=, the Predictor's slice search); deepgrow: the
    slice of params.slice only (propagate=False)."""
    p = _predictor(text_model, images["stack"])
    arr, result = _infer(server, "deepedit", "stack", {"text": PHRASES})
    expected = _labels(p.predict(texts=PHRASES).mask)
    assert arr.shape == (3, 128, 128) and (expected > 0).sum() > 300
    np.testing.assert_array_equal(arr, expected)
    assert result["label_names"] == {"lung": 1, "spinal cord": 2}
    arr, result = _infer(server, "deepgrow", "stack", {"text": "lung", "slice": 2})
    expected = np.zeros((3, 128, 128), np.uint8)
    expected[2] = p.predict(text="lung", slice_index=2, propagate=False).mask
    assert expected.sum() > 100
    np.testing.assert_array_equal(arr, expected)
    assert result["slices"] == {"lung": 2}


@pytest.mark.parametrize(
    ("model", "image", "params", "status", "message"),
    [  # 400: params that are not JSON of the right shape; 422: the Predictor's prompt errors
        ("deepgrow", "ct", {"text": "flurbo"}, 422, "unknown target 'flurbo'"),
        ("deepgrow", "ct", {"text": 3}, 400, "text must be a phrase or a list of phrases"),
        ("deepgrow", "ct", {"text": ["lung", 4]}, 400, "text must be a phrase or a list"),
        ("deepgrow", "ct", {"text": ["lung", "flurbo"]}, 422, "unknown target 'flurbo'"),
        ("deepgrow", "ct", {"text": PHRASES, "foreground": [[60, 60]]}, 422,
         "clicks correct one text target"),
        ("deepgrow", "stack", {"text": "lung"}, 422, "needs slice_index"),
    ],
    ids=["unknown", "number", "list-with-number", "unknown-in-list", "clicks-two-phrases",
         "volume-no-slice"],
)  # fmt: skip
def test_bad_text_is_refused(
    server: dict[str, Any], model: str, image: str, params: dict[str, Any], status: int,
    message: str,
) -> None:  # fmt: skip
    with pytest.raises(client_mod.MONAILabelClientException) as err:
        server["client"]().infer(model, image, params)
    assert f"Status: {status}" in err.value.msg
    assert message in json.loads(err.value.msg.split("Response: ", 1)[1])["detail"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ([], "text must hold 1 to 16 phrases, got 0"),
        (["liver"] * 17, "text must hold 1 to 16 phrases, got 17"),
        (["liver", "liver"], "repeat"),
        ("x" * 201, "longer than 200 characters"),
        ({"liver": 1}, "got dict"),
    ],
    ids=["empty", "too-many", "repeated", "too-long", "object"],
)
def test_parse_params_rejects_bad_text(text: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_params(json.dumps({"text": text}), 3)


def test_parse_params_reads_text_and_keeps_clicks() -> None:
    assert parse_params(json.dumps({"text": "liver"}), 3).text == ("liver",)
    req = parse_params(json.dumps({"text": PHRASES, "foreground": [[1, 2, 0]]}), 3)
    assert req.text == ("lung", "spinal cord") and req.objects[0].foreground.tolist() == [[1, 2, 0]]
    # a list-valued "text" is the prompt, not a deepedit label named "text"
    assert parse_params(json.dumps({"text": ["liver"]}), 3).objects == ()
    assert parse_params("{}", 2).text == ()
