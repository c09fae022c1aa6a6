"""Text prompts through the REST API (the browser app's text box): a scripted text head so the
masks are exact; the same Predictor door as the API and CLI (medseg.inference.text)."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.models.base import Decoded
from medseg.server.encoding import rle_decode

from .conftest import Api

LESION = np.zeros((40, 52), bool)
LESION[10:30, 12:40] = True  # the red rectangle of photos/lesion.png


class Head:
    """ "skin lesion": the rectangle (presence 0.9); anything else: absent (presence 0.1)."""

    threshold = 0.5

    def __init__(self, lite) -> None:
        self.lite = lite

    def vector(self, phrases):
        return np.full(384, 1.0 if phrases[0] == "skin lesion" else 0.0, np.float32)

    def decode(self, embedding, vectors):
        hit = vectors[:, 0] > 0
        logits = np.where(hit[:, None, None] & LESION, 8.0, -8.0)[:, None]
        return Decoded(logits=logits.astype(np.float32),
                       scores=np.where(hit, 0.9, 0.1)[:, None].astype(np.float32))  # fmt: skip


@pytest.fixture
def text_api(make_api, monkeypatch: pytest.MonkeyPatch) -> Api:
    monkeypatch.setattr("medseg.inference.text.text_decoder", lambda pred, lite: Head(lite))
    return make_api()


def _mask(res: dict) -> np.ndarray:
    m = res["mask"]
    return rle_decode(m["shape"], m["values"], m["counts"], np.uint8).astype(bool)


def test_text_request_found_and_not_found(text_api: Api) -> None:
    info = text_api.get("/api/info").json()
    assert info["model"]["tools"]["text"] == {"enabled": True, "reason": ""}
    sid = text_api.session(text_api.image_id("lesion"))
    url = f"/api/sessions/{sid}/predict"
    r = text_api.post(url, json={"text": "mole"})  # a synonym of "skin lesion"
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["found"] is True and res["target"] == "skin lesion"
    np.testing.assert_array_equal(_mask(res), LESION)
    assert res["area"] == int(LESION.sum()) and res["score"] == pytest.approx(0.9)
    # the correction after a text mask is an ordinary click on the previous mask
    r = text_api.post(url, json={"points": [[20, 20]], "mask_input": "previous"})
    assert r.status_code == 200 and "found" not in r.json()
    res = text_api.post(url, json={"text": "polyp", "label": 2}).json()
    assert res["found"] is False and res["area"] == 0 and not _mask(res).any()


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"text": "flux capacitor"}, "unknown target 'flux capacitor'; nearest known targets"),
        ({"text": "mole", "mask_input": "previous"}, "text prompts take clicks (points=) only, "
         "not mask; correct the text result afterwards with mask_input=result"),
        ({"text": "mole", "box": [1, 1, 9, 9]}, "text prompts take clicks (points=) only, not box"),
        ({"text": "mole", "scribbles": [{"points": [[1, 1], [3, 3]]}]},
         "text prompts take clicks (points=) only, not scribbles"),
        ({"text": ""}, "at least 1 character"),
    ],
)  # fmt: skip
def test_bad_text_requests(text_api: Api, body: dict, text: str) -> None:
    """The Predictor's own messages (medseg.inference.text), with the server's 422."""
    sid = text_api.session(text_api.image_id("lesion"))
    url = f"/api/sessions/{sid}/predict"
    assert text_api.post(url, json={"text": "mole"}).status_code == 200  # a previous mask
    r = text_api.post(url, json=body)
    assert r.status_code == 422, r.text
    assert text in r.text
