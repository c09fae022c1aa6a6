"""Every REST endpoint through FastAPI's TestClient, with the real LiteMedSAM model."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from medseg.data.samples import SAMPLE_CT_BOX
from medseg.server.encoding import png_decode_mask, rle_decode

from .conftest import PHANTOM_CENTRE, Api, phantom

LABEL = {"value": 1, "name": "canal", "color": "#e6194b"}


def decode(mask: dict) -> np.ndarray:
    if mask["encoding"] == "png":
        return png_decode_mask(mask["shape"], mask["png"])
    return rle_decode(mask["shape"], mask["values"], mask["counts"]).astype(bool)


def test_info_and_model(shared_api: Api) -> None:
    info = shared_api.get("/api/info").json()
    assert info["auth"] is True and info["model"]["name"] == "litemedsam"
    tools = info["model"]["tools"]
    assert tools["box"]["enabled"] and tools["negative_click"]["enabled"]
    assert not tools["scribble"]["enabled"] and "scribble" in tools["scribble"]["reason"]
    assert ".nii.gz" in info["upload_types"]
    model = shared_api.get("/api/model").json()
    assert model["prompt_kinds"] == ["box", "mask", "points"] and model["refine_default"] is False
    schema = shared_api.client.get("/openapi.json").json()
    assert "/api/sessions/{session_id}/predict" in schema["paths"]


def test_list_images_skips_labels_hidden_and_unknown_files(shared_api: Api) -> None:
    images = shared_api.get("/api/images").json()
    names = sorted(im["name"] for im in images)
    assert names == ["photos/lesion.png", "sample_ct/CT_small.dcm", "volumes/phantom.nii.gz"]
    ids = {im["id"] for im in images}
    assert all(len(i) == 16 for i in ids)
    assert ids == {im["id"] for im in shared_api.get("/api/images").json()}  # stable


def test_image_detail_2d_3d_rgb(shared_api: Api) -> None:
    ct = shared_api.get(f"/api/images/{shared_api.image_id('sample_ct')}").json()
    assert ct["ndim"] == 2 and ct["shape"] == [128, 128] and ct["modality"] == "CT"
    assert ct["default_window"] == "soft_tissue" and {"lung", "bone", "brain"} <= set(ct["windows"])
    assert ct["window_presets"]["soft_tissue"] == [40.0, 400.0] and ct["views"] == ["axial"]
    vol = shared_api.get(f"/api/images/{shared_api.image_id('phantom')}").json()
    assert vol["ndim"] == 3 and vol["shape"] == [3, 40, 48]
    assert vol["views"] == ["axial", "coronal", "sagittal"]
    assert vol["view_shapes"] == {"axial": [3, 40, 48], "coronal": [40, 3, 48],
                                  "sagittal": [48, 3, 40]}  # fmt: skip
    assert vol["default_window"] == "auto" and vol["spacing"] == [2.0, 1.0, 1.0]
    rgb = shared_api.get(f"/api/images/{shared_api.image_id('lesion')}").json()
    assert rgb["rgb"] and rgb["default_window"] == "original"


def _png(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(PILImage.open(io.BytesIO(response.content)))


def test_slices_windows_and_views(shared_api: Api) -> None:
    ct = shared_api.image_id("sample_ct")
    soft = _png(shared_api.get(f"/api/images/{ct}/slice", params={"window": "soft_tissue"}))
    bone = _png(shared_api.get(f"/api/images/{ct}/slice", params={"window": "bone"}))
    assert soft.shape == (128, 128) and soft.dtype == np.uint8 and not np.array_equal(soft, bone)
    custom = _png(shared_api.get(f"/api/images/{ct}/slice", params={"level": 40, "width": 400}))
    assert np.array_equal(custom, soft)
    vol = shared_api.image_id("phantom")
    cz, cy, cx = PHANTOM_CENTRE
    axial = _png(shared_api.get(f"/api/images/{vol}/slice", params={"index": cz}))
    coronal = _png(
        shared_api.get(f"/api/images/{vol}/slice", params={"view": "coronal", "index": cy})
    )
    sagittal = _png(
        shared_api.get(f"/api/images/{vol}/slice", params={"view": "sagittal", "index": cx})
    )
    assert axial.shape == (40, 48) and coronal.shape == (3, 48) and sagittal.shape == (3, 40)
    assert axial[cy, cx] == 255 and axial[2, 2] < 200  # bright ball, darker background
    ball = phantom().array == 300
    assert np.array_equal(coronal == 255, ball[::-1, cy])  # head (last slice) at the top
    rgb = _png(shared_api.get(f"/api/images/{shared_api.image_id('lesion')}/slice"))
    assert rgb.shape == (40, 52, 3) and tuple(rgb[20, 20]) == (200, 60, 40)


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"window": "nope"}, 400),
        ({"level": 40}, 400),
        ({"width": -5, "level": 0}, 422),
        ({"index": 3}, 400),
        ({"view": "coronal"}, 400),
        ({"view": "oblique"}, 422),
    ],
)
def test_bad_slice_requests(shared_api: Api, params: dict, status: int) -> None:
    r = shared_api.get(f"/api/images/{shared_api.image_id('sample_ct')}/slice", params=params)
    assert r.status_code == status, r.text


def test_unknown_image_and_session(shared_api: Api) -> None:
    assert shared_api.get("/api/images/0123456789abcdef").status_code == 404
    assert shared_api.get("/api/images/not-an-id").status_code == 422
    assert (
        shared_api.post("/api/sessions", json={"image_id": "0123456789abcdef"}).status_code == 404
    )
    assert shared_api.get("/api/sessions/" + "x" * 22).status_code == 404
    r = shared_api.post("/api/sessions/" + "x" * 22 + "/predict", json={"box": [1, 1, 5, 5]})
    assert r.status_code == 404


def test_session_predict_refine_2d(shared_api: Api) -> None:
    ct = shared_api.image_id("sample_ct")
    r = shared_api.post("/api/sessions", json={"image_id": ct})
    assert r.status_code == 201
    body = r.json()
    assert body["embed_ms"] > 0 and body["image"]["id"] == ct and body["model"]["name"]
    sid = body["session_id"]
    assert shared_api.get(f"/api/sessions/{sid}").json()["session_id"] == sid
    first = shared_api.post(
        f"/api/sessions/{sid}/predict", json={"box": list(SAMPLE_CT_BOX)}
    ).json()
    mask = decode(first["mask"])
    _, y0, _, y1 = SAMPLE_CT_BOX
    assert mask.shape == (128, 128) and first["area"] == mask.sum() > 50
    assert not mask[:y0].any() and not mask[y1 + 2 :].any()  # inside the box
    assert first["latency_ms"] >= first["model_ms"] > 0 and 0 < first["score"] <= 1
    ys, xs = np.nonzero(mask)
    click = [float(xs.mean()), float(ys.mean())]
    refined = shared_api.post(
        f"/api/sessions/{sid}/predict",
        json={"box": list(SAMPLE_CT_BOX), "points": [click], "point_labels": [0],
              "mask_input": "previous", "encoding": "png"},
    ).json()  # fmt: skip
    assert refined["mask"]["encoding"] == "png"
    assert decode(refined["mask"]).sum() < mask.sum()  # the negative click removed pixels
    assert shared_api.delete(f"/api/sessions/{sid}").status_code == 204
    assert shared_api.get(f"/api/sessions/{sid}").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({}, 422, "no prompt given: pass box=, points=, scribbles= or mask_input="),
        ({"box": [10, 10, 5, 20]}, 422, "inverted"),
        ({"box": [0, 0, 500, 20]}, 422, "outside"),
        ({"points": [[10, 10]], "point_labels": [1, 0]}, 422, "labels"),
        ({"points": [[10, 10]], "point_labels": [2]}, 422, ""),
        ({"box": [1, 1, 9, 9], "scribbles": [{"points": [[1, 1], [3, 3]]}]}, 422, "scribble"),
        ({"box": [1, 1, 9, 9], "slice_index": 3}, 422, "2D"),
        ({"box": [1, 1, 9, 9], "propagate": True}, 422, "2D"),
        ({"box": [1, 1, 9, "nan"]}, 422, ""),
        ({"box": [1, 1, 9, 9], "bogus": 1}, 422, ""),
    ],
)
def test_bad_prompts_are_rejected(shared_api: Api, body: dict, status: int, text: str) -> None:
    sid = shared_api.session(shared_api.image_id("sample_ct"))  # the embedding is cached
    r = shared_api.post(f"/api/sessions/{sid}/predict", json=body)
    assert r.status_code == status, r.text
    assert text in r.text


@pytest.mark.slow
def test_volume_slice_prediction_views_and_propagation(shared_api: Api) -> None:
    vol = shared_api.image_id("phantom")
    sid = shared_api.session(vol, slice_index=PHANTOM_CENTRE[0])
    cz, cy, cx = PHANTOM_CENTRE
    box = [cx - 9, cy - 9, cx + 9, cy + 9]
    r = shared_api.post(f"/api/sessions/{sid}/predict", json={"box": box, "slice_index": cz})
    assert r.status_code == 200, r.text
    ball = phantom().array == 300
    mask = decode(r.json()["mask"])
    dice = 2 * (mask & ball[cz]).sum() / (mask.sum() + ball[cz].sum())
    assert mask.shape == (40, 48) and dice > 0.8 and "propagated" not in r.json()
    assert shared_api.post(f"/api/sessions/{sid}/predict", json={"box": box}).status_code == 422
    r = shared_api.post(f"/api/sessions/{sid}/predict", json={"box": box, "slice_index": 3})
    assert r.status_code == 422
    prep = shared_api.post(
        f"/api/sessions/{sid}/prepare", json={"view": "coronal", "slice_index": cy}
    )
    assert prep.status_code == 200 and prep.json()["slice_index"] == cy
    # Coronal slice: rows run from the last slice (top) to the first.
    cor = shared_api.post(
        f"/api/sessions/{sid}/predict",
        json={"view": "coronal", "slice_index": cy, "box": [cx - 9, 0, cx + 9, 3]},
    )
    assert cor.status_code == 200 and decode(cor.json()["mask"]).shape == (3, 48)
    prop = shared_api.post(
        f"/api/sessions/{sid}/predict", json={"box": box, "slice_index": cz, "propagate": True}
    ).json()
    block = prop["propagated"]
    assert block["start"] < cz < block["stop"]
    stack = decode(block["mask"])
    assert stack.shape == (block["stop"] - block["start"] + 1, 40, 48)
    assert stack[cz - block["start"]].sum() == prop["area"]
