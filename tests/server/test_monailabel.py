"""The MONAI Label-compatible API, with requests shaped like ``MONAILabelClient``'s (form
field ``params`` holding JSON, files ``file`` / ``label``, ``image`` in the query), and
monailabel's own ``MONAILabelClient`` against a live uvicorn server (at the end). The test
volume and helpers are in ``tests/_support/monailabel_helpers.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from monailabel_helpers import (  # tests/_support (pytest's pythonpath)
    CENTRE,
    CLICK,
    assert_on_ball_grid,
    ball_image,
    ball_mask,
    free_port,
    live_server,
    multipart,
    read_label,
    write_ball,
)

from medseg.io.image import Image
from medseg.io.writers import save

from .conftest import BASE_URL, Api


def upload(api: Api, folder: Path, name: str = "ball") -> dict[str, Any]:
    path = write_ball(folder)
    with open(path, "rb") as f:
        r = api.put(f"/datastore/?image={name}", data={"params": "{}"},
                    files={"file": ("ball.nii.gz", f, "application/gzip")})  # fmt: skip
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def ml_model(default_model: Any) -> Any:
    """The model ``medseg serve`` serves by default (medseg-interactive): what 3D Slicer's
    deepgrow clicks reach. (LiteMedSAM alone segments nothing from one click here.) The
    session's ``default_model`` (tests/conftest.py)."""
    return default_model


def _app(model: Any, data_dir: Path, **config: Any) -> Any:
    from medseg.server.app import create_app
    from medseg.server.config import ServerConfig

    return create_app(ServerConfig(data_dir=data_dir, warmup=False, **config), model=model)


@pytest.fixture()
def make_ml(ml_model: Any, store: Path, tmp_path: Path) -> Iterator[Callable[..., tuple[Api, Any]]]:
    """Factory: ``make_ml(data_dir=..., **config)`` -> (:class:`Api`, app) on a fresh
    datastore copy (default) with the module's model."""
    from fastapi.testclient import TestClient

    clients: list[TestClient] = []

    def make(data_dir: Path = store, **config: Any) -> tuple[Api, Any]:
        app = _app(ml_model, data_dir, **config)
        clients.append(TestClient(app, base_url=BASE_URL))
        return Api(clients[-1], app.state.medseg.token), app

    yield make
    for c in clients:
        c.close()


@pytest.fixture(scope="module")
def ml(
    ml_model: Any, store_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """One app (auth on) for this module, with the ball volume uploaded as ``ball``."""
    import shutil

    from fastapi.testclient import TestClient

    store = tmp_path_factory.mktemp("ml") / "store"
    shutil.copytree(store_template, store, symlinks=True)
    with TestClient(_app(ml_model, store), base_url=BASE_URL) as client:
        api = Api(client, client.app.state.medseg.token)
        upload(api, tmp_path_factory.mktemp("ball"))
        yield api


def infer(api: Api, model: str, params: dict[str, Any], query: str = "image=ball") -> Any:
    return api.post(f"/infer/{model}?{query}", data={"params": json.dumps(params)})


def test_info_lists_models_labels_and_strategies(ml: Api) -> None:
    info = ml.get("/info/").json()
    assert info["name"] == "medseg" and info["labels"] == ["object"]
    models = info["models"]
    assert set(models) == {"deepgrow", "deepedit"}  # no --auto-model: no segmentation model
    assert models["deepgrow"]["type"] == "deepgrow" and models["deepgrow"]["dimension"] == 2
    assert models["deepedit"]["type"] == "deepedit" and models["deepedit"]["dimension"] == 3
    assert models["deepedit"]["labels"] == {"object": 1}
    assert set(info["strategies"]) == {"first", "random"} and info["trainers"] == {}
    assert info["datastore"]["total"] == 4  # the three sample images + the upload
    r = ml.client.get("/info/")  # no token
    assert r.status_code == 401 and "token" in r.json()["detail"]


def test_deepgrow_click_gives_the_ball_on_its_slice_as_nrrd(ml: Api, tmp_path: Path) -> None:
    params = {"label": "ball", "foreground": [CLICK], "background": [],
              "result_extension": ".nrrd", "result_dtype": "uint8", "client_id": "u"}  # fmt: skip
    r = infer(ml, "deepgrow", params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("multipart/form-data")
    result, filename, data = multipart(r)
    assert filename.endswith(".nrrd") and result["label_names"] == {"ball": 1}
    arr = assert_on_ball_grid(read_label(data, ".nrrd", tmp_path))
    assert arr.dtype == np.uint8 and set(np.unique(arr)) == {0, 1}
    assert arr[CENTRE] == 1 and not arr[0].any() and not arr[2].any()  # 2D: that slice only
    truth = ball_mask()[1]
    dice = 2 * (arr[1].astype(bool) & truth).sum() / (arr[1].astype(bool).sum() + truth.sum())
    assert dice > 0.8


def test_deepedit_roi_box_propagates_within_its_slices(ml: Api, tmp_path: Path) -> None:
    params = {"label": "object", "roi": [14, 10, 34, 30, 0, 2], "result_extension": ".nii.gz"}
    r = infer(ml, "deepedit", params, "image=ball&output=image")
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"].endswith('.nii.gz"')
    arr = assert_on_ball_grid(read_label(r.content, ".nii.gz", tmp_path))
    assert arr.dtype == np.uint8 and set(np.unique(arr)) == {0, 1}
    mask = arr.astype(bool)
    assert mask[1].sum() > 100 and mask[0].any() and mask[2].any()  # carried to both slices
    assert not mask[:, :, :12].any() and not mask[:, :, 37:].any()  # inside the box in x
    assert (mask & ball_mask()).sum() / mask.sum() > 0.8


def test_output_json_and_deepedit_label_clicks(ml: Api) -> None:
    params = {"object": [CLICK], "background": [], "label": "object",
              "label_names": {"object": 3, "background": 0}}  # fmt: skip
    r = infer(ml, "deepedit", params, "image=ball&output=json")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["label_names"] == {"object": 3} and body["slices"] == {"object": 1}


@pytest.mark.parametrize(
    ("model", "params", "query", "status", "text"),
    [
        ("nnunet", {"foreground": [CLICK]}, "image=ball", 404, "deepgrow, deepedit"),
        ("deepgrow", {"foreground": [[99, 20, 1]]}, "image=ball", 422, "[99, 20, 1] is outside"),
        ("deepgrow", {"foreground": [[1, 2]]}, "image=ball", 422, "[i, j, k]"),
        ("deepgrow", {"background": [CLICK]}, "image=ball", 422, "no foreground click"),
        ("deepgrow", {"roi": [30, 10, 20, 30]}, "image=ball", 422, "roi"),
        ("deepgrow", {"roi": [14, 10, 34, 30]}, "image=ball", 422, "needs a slice"),
        ("deepgrow", {"foreground": [CLICK]}, "image=nothing", 404, "no image named 'nothing'"),
        ("deepgrow", {"foreground": [CLICK]}, "", 400, "no image given"),
        ("deepgrow", {"foreground": [CLICK], "result_dtype": "f4"}, "image=ball", 400, "uint16"),
    ],
)
def test_bad_infer_requests_are_clear_4xx(
    ml: Api, model: str, params: dict, query: str, status: int, text: str
) -> None:
    r = infer(ml, model, params, query)
    assert r.status_code == status, r.text
    assert text in r.json()["detail"]


def test_params_that_are_not_a_json_object(ml: Api) -> None:
    r = ml.post("/infer/deepgrow?image=ball", data={"params": "{not json"})
    assert r.status_code == 400 and "params is not valid JSON" in r.json()["detail"]
    r = ml.post("/infer/deepgrow?image=ball", data={"params": "[1, 2]"})
    assert r.status_code == 400 and "JSON object" in r.json()["detail"]


def test_not_offered_endpoints_say_so(ml: Api) -> None:
    r = ml.post("/train/", json={})
    assert r.status_code == 501 and "does not train" in r.json()["detail"]
    r = ml.post("/activelearning/epistemic", json={})
    assert r.status_code == 404 and "first, random" in r.json()["detail"]
    auth = ml.get("/auth/").json()
    assert auth["enabled"] is False and "Bearer" in auth["detail"]


@pytest.fixture()
def fresh(make_ml: Callable[..., tuple[Api, Any]], tmp_path: Path) -> Api:
    """A fresh app with the ball uploaded (for tests that save labels)."""
    api = make_ml()[0]
    upload(api, tmp_path / "ball_src")
    return api


def _label_file(folder: Path, arr: np.ndarray, name: str = "label.nii.gz") -> Path:
    from medseg.io.image import LabelMap

    return save(LabelMap.like(ball_image(), arr.astype(np.uint8)), folder / name)


def test_save_label_lists_and_downloads_it(fresh: Api, tmp_path: Path) -> None:
    arr = ball_mask().astype(np.uint8) * 2
    path = _label_file(tmp_path, arr)
    params = {"label_info": [{"name": "tumour", "idx": 2}], "client_id": "user-xyz"}
    with open(path, "rb") as f:
        files = {"label": ("l.nii.gz", f)}
        r = fresh.put("/datastore/label?image=ball&tag=final",
                      data={"params": json.dumps(params)}, files=files)  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["image"] == "ball" and r.json()["version"] == 1
    store = fresh.get("/datastore/?output=all").json()
    assert store["completed"] == 1 and store["total"] == 4
    labelled = [k for k, v in store["objects"].items() if v["labels"]]
    assert len(labelled) == 1 and store["objects"][labelled[0]]["image"]["ext"] == ".nii.gz"
    info = store["objects"][labelled[0]]["labels"]["final"]["info"]
    assert info["labels"][0]["name"] == "tumour" and info["labels"][0]["value"] == 2
    r = fresh.get("/datastore/label?label=ball&tag=final")
    assert r.status_code == 200
    back = assert_on_ball_grid(read_label(r.content, ".nii.gz", tmp_path))
    np.testing.assert_array_equal(back, arr)
    r = fresh.get(f"/datastore/label?label={labelled[0]}&tag=original")
    assert r.status_code == 404 and "no label with tag 'original'" in r.json()["detail"]


def test_bad_uploads_and_labels_are_refused(fresh: Api, tmp_path: Path) -> None:
    wrong = save(Image(np.zeros((4, 4, 4), np.uint8)), tmp_path / "wrong.nii.gz")
    with open(wrong, "rb") as f:
        r = fresh.put("/datastore/label?image=ball", files={"label": ("wrong.nii.gz", f)})
    assert r.status_code == 400 and "does not match the image (3, 40, 48)" in r.json()["detail"]
    with open(wrong, "rb") as f:  # another image under a taken name
        r = fresh.put("/datastore/?image=ball", files={"file": ("x.nii.gz", f)})
    assert r.status_code == 409 and "never overwrites" in r.json()["detail"]
    with open(wrong, "rb") as f:
        r = fresh.put("/datastore/label?image=ball", files={"label": ("l.txt", f)})
    assert r.status_code == 400 and "unsupported file type" in r.json()["detail"]
    r = fresh.put("/datastore/label?image=ball", files={"label": ("l.nii.gz", b"garbage")})
    detail = r.json()["detail"]
    assert r.status_code == 400 and "'l.nii.gz'" in detail and "/tmp" not in detail
    r = fresh.put("/datastore/?image=junk", files={"file": ("x.nii.gz", b"garbage")})
    assert r.status_code == 415 and "not a nifti file" in r.json()["detail"]
    # a label file larger than a label map of this (3, 40, 48) image can be:
    # 16 bytes per voxel + 256 KiB = 354,304 bytes, refused while it streams in
    big = np.random.default_rng(0).bytes(400_000)
    r = fresh.put("/datastore/label?image=ball", files={"label": ("l.nii.gz", big)})
    assert r.status_code == 413, r.text
    assert r.json()["detail"] == "upload larger than the limit of 354304 bytes"
    again = upload(fresh, tmp_path / "again")  # same voxels again (3D Slicer does that)
    assert again["image"] == "ball"
    assert fresh.get("/datastore/").json()["total"] == 4


def test_next_sample_skips_labelled_images(
    make_ml: Callable[..., tuple[Api, Any]], tmp_path: Path
) -> None:
    write_ball(tmp_path / "data" / "a")
    write_ball(tmp_path / "data" / "b")
    api = make_ml(tmp_path / "data")[0]
    first = api.post("/activelearning/first", json={"client_id": "u"}).json()
    assert first["name"] == "ball.nii.gz" and first["path"] == "" and first["strategy"] == "first"
    r = api.get(f"/datastore/image?image={first['id']}")
    assert r.status_code == 200 and 'filename="ball.nii.gz"' in r.headers["content-disposition"]
    assert_on_ball_grid(read_label(r.content, ".nii.gz", tmp_path))
    raw = ball_mask().astype(np.uint8).tobytes()  # OHIF's label.bin: uint8, x fastest
    r = api.put(f"/datastore/label?image={first['id']}", files={"label": ("label.bin", raw)})
    assert r.status_code == 200, r.text
    picks = {api.post("/activelearning/random", json={}).json()["id"] for _ in range(6)}
    assert len(picks) == 1 and first["id"] not in picks
    r = api.put(f"/datastore/label?image={picks.pop()}", files={"label": ("label.bin", raw)})
    assert r.status_code == 200, r.text
    assert api.post("/activelearning/first", json={}).json() == {}  # all done: MONAI Label's {}
    assert api.get("/datastore/").json() == {"name": "data", "total": 2, "completed": 2,
                                             "pending": 0}  # fmt: skip
    r = api.put(f"/datastore/label?image={first['id']}", files={"label": ("label.bin", raw[:9])})
    assert r.status_code == 400 and "label.bin has 9 voxels" in r.json()["detail"]


def test_image_download_dicom_as_nrrd_and_files_as_they_are(ml: Api, tmp_path: Path) -> None:
    import SimpleITK as sitk

    objects = ml.get("/datastore/?output=all").json()["objects"]
    exts = {v["image"]["info"]["name"].split("/")[0]: v["image"]["ext"] for v in objects.values()}
    assert exts == {"photos": ".png", "sample_ct": ".nrrd", "volumes": ".nii.gz",
                    "uploads": ".nii.gz"}  # fmt: skip
    r = ml.get(f"/datastore/image?image={ml.image_id('CT_small')}")
    assert r.status_code == 200 and 'filename="sample_ct.nrrd"' in r.headers["content-disposition"]
    ct = read_label(r.content, ".nrrd", tmp_path)
    assert ct.GetSize() == (128, 128) and ct.GetPixelID() == sitk.sitkInt16
    r = ml.get(f"/datastore/image?image={ml.image_id('lesion')}")
    assert r.headers["content-type"] == "image/png" and r.content.startswith(b"\x89PNG")


def test_session_upload_infer_and_close(fresh: Api, tmp_path: Path) -> None:
    path = write_ball(tmp_path / "session", "volume.nii.gz")
    with open(path, "rb") as f:
        r = fresh.put("/session/", data={"client_id": "u"}, files=[("files", ("v.nii.gz", f))])
    assert r.status_code == 200, r.text
    session_id = r.json()["session_id"]
    info = fresh.get(f"/session/{session_id}").json()
    assert info["name"] == session_id and info["image"]
    r = infer(fresh, "deepgrow", {"foreground": [CLICK]}, f"image=&session_id={session_id}")
    assert r.status_code == 200, r.text
    arr = assert_on_ball_grid(read_label(multipart(r)[2], ".nii.gz", tmp_path))
    assert arr[CENTRE] == 1
    assert fresh.delete(f"/session/{session_id}").status_code == 200
    r = fresh.get(f"/session/{session_id}")
    assert r.status_code == 404


@pytest.mark.parametrize("auth", [True, False], ids=["token", "no-auth"])
def test_monailabel_client_round_trip(
    ml_model: Any, store: Path, tmp_path: Path, auth: bool
) -> None:
    """What 3D Slicer's MONAI Label module does, through ``MONAILabelClient`` (one client
    per call, as the module's logic makes them): info, upload, infer with a click, save the
    label, list the datastore, download the label, next sample, a session, an error."""
    client_mod = pytest.importorskip("monailabel.client.client")
    import SimpleITK as sitk

    app = _app(ml_model, store, port=free_port(), auth=auth)
    token = app.state.medseg.token
    volume = write_ball(tmp_path / "src")

    with live_server(app) as url:

        def client() -> Any:
            c = client_mod.MONAILabelClient(url, tmpdir=str(tmp_path), client_id="user-xyz")
            if token:
                c.update_auth({"token_type": "Bearer", "access_token": token})
            return c

        if auth:
            with pytest.raises(client_mod.MONAILabelClientException, match="Status: 401"):
                client_mod.MONAILabelClient(url).info()
        assert client().auth_enabled() is False  # the token is passed as a header instead
        info = client().info()
        assert info["models"]["deepgrow"]["type"] == "deepgrow" and "first" in info["strategies"]
        assert client().upload_image(str(volume), "ball")["image"] == "ball"
        params = {"label": "ball", "foreground": [CLICK], "background": [],
                  "result_extension": ".nrrd", "result_dtype": "uint8"}  # fmt: skip
        result_file, result = client().infer("deepgrow", "ball", params)
        assert result["label_names"] == {"ball": 1} and result_file.endswith(".nrrd")
        arr = assert_on_ball_grid(sitk.ReadImage(result_file))
        assert arr.dtype == np.uint8 and arr[CENTRE] == 1 and arr.sum() > 100

        saved = client().save_label("ball", result_file, params={"label_info": [
            {"name": "ball", "idx": 1}]})  # fmt: skip
        assert saved["image"] == "ball" and saved["version"] == 1
        objects = client().datastore()["objects"]
        ball_id = next(k for k, v in objects.items() if v["labels"])
        assert objects[ball_id]["labels"]["final"]["info"]["labels"][0]["name"] == "ball"
        back = assert_on_ball_grid(sitk.ReadImage(client().download_label("ball", "final")))
        np.testing.assert_array_equal(back, arr)

        sample = client().next_sample("first", {})
        assert sample["id"] in objects and sample["id"] != ball_id

        session = client().create_session(str(volume))
        sid = session["session_id"]
        assert client().get_session(sid)["name"] == sid
        result_file, _ = client().infer("deepgrow", "", params, session_id=sid)
        assert assert_on_ball_grid(sitk.ReadImage(result_file))[CENTRE] == 1
        client().remove_session(sid)

        with pytest.raises(client_mod.MONAILabelClientException) as err:
            client().infer("spleen", "ball", params)
        assert "Status: 404" in err.value.msg and "deepgrow, deepedit" in err.value.msg
