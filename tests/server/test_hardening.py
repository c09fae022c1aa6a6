"""Issue 17: cross-origin writes, malformed JSON bodies, bounded label bodies, crash leftovers."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import InputError
from medseg.server.encoding import png_decode_mask, rle_encode
from medseg.server.labelstore import ORPHAN_AGE_S, LabelStore
from medseg.server.uploads import STALE_STAGING_S, sweep_staging

from .conftest import BASE_URL, Api

LABELS = [{"value": 1, "name": "liver", "color": "#ff0000"}]


def _label_body(shape=(128, 128)) -> dict:
    arr = np.zeros(shape, np.uint8)
    arr[10:20, 10:30] = 1
    return {"labels": LABELS, "data": rle_encode(arr)}


def _cookie_api(api: Api) -> None:
    """Log the client in the browser's way: the token link sets the cookie."""
    assert api.client.get(f"/?token={api.token}", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Origin": "http://127.0.0.1:9999"}, 403),  # another port of the same host
        ({"Referer": "http://evil.example/page"}, 403),
        ({"Origin": BASE_URL}, 201),
        ({"Origin": "HTTP://127.0.0.1:8000"}, 201),  # same origin, other spelling
        ({"Referer": BASE_URL + "/"}, 201),
        ({}, 201),  # command-line clients send neither
    ],
)
def test_cookie_writes_must_come_from_the_app(api: Api, origin: dict, status: int) -> None:
    _cookie_api(api)
    ct = api.image_id("sample_ct")
    r = api.client.post(f"/api/images/{ct}/labels", json=_label_body(), headers=origin)
    assert r.status_code == status, r.text
    if status == 403:
        assert "cross-origin" in r.json()["detail"]
    # reads with the cookie are not checked (a foreign page cannot read the answer)
    assert api.client.get("/api/images", headers=origin).status_code == 200


def test_bearer_writes_are_not_origin_checked(api: Api) -> None:
    ct = api.image_id("sample_ct")
    r = api.post(
        f"/api/images/{ct}/labels", json=_label_body(), headers={"Origin": "http://x.example"}
    )
    assert r.status_code == 201, r.text


def test_no_auth_mode_still_refuses_foreign_writes(make_api) -> None:
    api = make_api(auth=False)
    ct = api.image_id("sample_ct")
    evil = {"Origin": "http://evil.example"}
    assert api.post(f"/api/images/{ct}/labels", json=_label_body(), headers=evil).status_code == 403
    assert api.post(f"/api/images/{ct}/labels", json=_label_body()).status_code == 201


def test_cors_origins_may_write(make_api) -> None:
    api = make_api(cors_origins=("http://tool.example",))
    _cookie_api(api)
    ct = api.image_id("sample_ct")
    tool = {"Origin": "http://tool.example"}
    assert (
        api.client.post(f"/api/images/{ct}/labels", json=_label_body(), headers=tool).status_code
        == 201
    )


def test_nan_and_infinity_in_a_body_are_422_not_500(api: Api) -> None:
    ct = api.image_id("sample_ct")
    for value in ("NaN", "Infinity", "1e999"):
        raw = '{"image_id": "%s", "box": [%s, 1, 10, 10]}' % (ct, value)  # noqa: UP031
        r = api.post("/api/sessions", content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code in (400, 422), (value, r.status_code, r.text)
        r.json()  # the error body is valid JSON
    body = _label_body()
    raw = (
        f'{{"labels": {LABELS!r}, "data": {{"shape": [128, 128], "values": [0], "counts": [NaN]}}}}'
    )
    r = api.post(f"/api/images/{ct}/labels", content=raw.replace("'", '"'),
                 headers={"Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 422, r.text
    assert body  # unchanged fixture


def test_label_body_is_bounded(make_api, store: Path) -> None:
    api = make_api(max_label_body_bytes=2000)
    ct = api.image_id("sample_ct")
    noisy = (np.arange(128 * 128).reshape(128, 128) % 2).astype(np.uint8)  # 16 k runs
    r = api.post(f"/api/images/{ct}/labels", json={"labels": LABELS, "data": rle_encode(noisy)})
    assert r.status_code == 413 and "max_label_body_bytes" in r.json()["detail"]
    assert not list((store / "labels").rglob("v0*.png"))
    assert api.post(f"/api/images/{ct}/labels", json=_label_body()).status_code == 201


def _age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_label_store_sweeps_crash_leftovers_only(make_api, store: Path) -> None:
    api = make_api()
    ct = api.image_id("sample_ct")
    assert api.post(f"/api/images/{ct}/labels", json=_label_body()).status_code == 201
    folder = next((store / "labels").rglob("v0001.json")).parent
    claim, data = folder / "v0002.json", folder / "v0002.png"
    claim.touch()
    data.write_bytes(b"half")
    temp, fresh = folder / ".v0003.abc.png", folder / ".v0004.abc.png"
    temp.write_bytes(b"x")
    fresh.write_bytes(b"x")
    for p in (claim, data, temp):
        _age(p, ORPHAN_AGE_S + 60)
    removed = LabelStore(api.client.app.state.medseg.datastore, sweep=False).sweep_orphans()
    assert sorted(Path(r).name for r in removed) == [".v0003.abc.png", "v0002.json", "v0002.png"]
    assert fresh.exists() and (folder / "v0001.json").exists() and (folder / "v0001.png").exists()
    assert [v["version"] for v in api.get(f"/api/images/{ct}/labels").json()] == [1]


def test_staging_sweep(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    for d in (old, new):
        d.mkdir()
        (d / "a.png").write_bytes(b"x")
    _age(old, STALE_STAGING_S + 1)
    assert sweep_staging(tmp_path) == 1
    assert not old.exists() and new.exists()
    assert sweep_staging(tmp_path / "missing") == 0


def test_png_mask_garbage_is_an_input_error() -> None:
    with pytest.raises(InputError, match="cannot decode the PNG mask"):
        png_decode_mask([4, 4], base64.b64encode(b"not a png").decode())
    with pytest.raises(InputError, match="cannot decode the PNG mask"):
        png_decode_mask([4, 4], "***")
