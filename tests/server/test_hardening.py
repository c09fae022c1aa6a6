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


# ---- detached data files, server paths in errors, bad label links, corrupt DICOM ----------

_MHA = "ObjectType = Image\nNDims = 2\nDimSize = 8 8\nElementType = MET_UCHAR\n"
_NRRD = "NRRD0004\ntype: uint8\ndimension: 2\nsizes: 8 8\nencoding: raw\n"


def _files_in(store: Path) -> set[str]:
    return {p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()}


@pytest.fixture()
def outside_file(tmp_path: Path) -> Path:
    """64 bytes outside the datastore that a crafted header tries to read as pixels."""
    path = tmp_path / "server_secret.raw"
    path.write_bytes(bytes(range(64)))
    return path


@pytest.mark.parametrize(
    ("name", "header", "field"),
    [
        ("x.mha", _MHA + "ElementDataFile = {path}\n", "ElementDataFile"),
        ("rel.mha", _MHA + "ElementDataFile = ../../../server_secret.raw\n", "ElementDataFile"),
        ("same.mha", _MHA + "ElementDataFile = same.raw\n", "ElementDataFile"),  # no pair
        ("y.nrrd", _NRRD + "data file: {path}\n\n", "data file"),
        ("z.nrrd", _NRRD + "datafile: ../server_secret.raw\n\n", "data file"),
    ],
)
def test_upload_naming_another_file_is_refused(
    api: Api, store: Path, outside_file: Path, name: str, header: str, field: str
) -> None:
    before = _files_in(store)
    body = header.format(path=outside_file).encode()
    r = api.post("/api/images", files={"files": (name, body, "application/octet-stream")})
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert detail.startswith(f"{name!r}: header field {field} names another file")
    assert "must hold its own pixels" in detail
    assert str(store) not in r.text and ".incoming" not in r.text
    assert _files_in(store) == before


def test_upload_mha_without_element_data_file_and_local_mha(api: Api) -> None:
    r = api.post("/api/images", files={"files": ("n.mha", _MHA.encode(), "application/x")})
    assert r.status_code == 400 and "no ElementDataFile field" in r.json()["detail"]
    good = (_MHA + "ElementDataFile = LOCAL\n").encode() + bytes(range(64))
    r = api.post("/api/images", files={"files": ("good.mha", good, "application/x")})
    assert r.status_code == 201, r.text
    assert api.get(f"/api/images/{r.json()['id']}").json()["shape"] == [8, 8]


def test_error_details_hide_the_datastore_path(make_api, store: Path) -> None:
    (store / "bad").mkdir()
    (store / "bad" / "broken.nii.gz").write_bytes(b"\x1f\x8b" + b"not gzip" * 20)
    api = make_api()
    bad = api.image_id("broken")
    for r in (api.get(f"/api/images/{bad}"), api.post("/api/sessions", json={"image_id": bad})):
        assert r.status_code == 400, r.text
        detail = r.json()["detail"]
        assert detail.startswith("bad/broken.nii.gz: cannot read"), detail
        assert str(store) not in r.text and str(store.resolve()) not in r.text


def test_public_message_strips_only_the_root() -> None:
    from medseg.server.app import public_message

    roots = ["/srv/store", "/srv/link/"]
    assert public_message("/srv/store/a/b.png: bad", roots) == "a/b.png: bad"
    assert public_message("'/srv/store' missing", roots) == "'.' missing"
    assert public_message("/srv/store2/x and /srv/link/y", roots) == "/srv/store2/x and y"
    assert public_message("/x", ["/"]) == "/x"


def test_dangling_label_links_affect_only_their_image(api: Api, store: Path) -> None:
    ct = api.image_id("sample_ct")
    assert api.post(f"/api/images/{ct}/labels", json=_label_body()).status_code == 201
    ct_folder = next((store / "labels").rglob("v0001.json")).parent
    (ct_folder / "v0002.json").symlink_to(store / "missing.json")  # dangling, in a folder
    labels = store / "labels"
    (labels / "volumes").mkdir()
    (labels / "volumes" / "phantom.nii.gz").symlink_to(store / "nowhere")  # dangling folder
    (labels / "photos").symlink_to(labels / "photos")  # a link loop
    r = api.get("/api/images")
    assert r.status_code == 200, r.text
    versions = {im["name"]: im["versions"] for im in r.json()}
    assert versions["volumes/phantom.nii.gz"] == 0 and versions["photos/lesion.png"] == 0
    assert next(v for n, v in versions.items() if "sample_ct" in n) == 1
    assert [v["version"] for v in api.get(f"/api/images/{ct}/labels").json()] == [1]
    phantom = api.image_id("phantom")
    assert api.get(f"/api/images/{phantom}").status_code == 200
    assert api.get(f"/api/images/{phantom}/labels").json() == []


def _second_slice_cut_short() -> bytes:
    """Slice 2 of the sample's series (5 mm further) with its pixel data cut short."""
    import io

    import pydicom
    from pydicom.uid import generate_uid

    from medseg.data.samples import sample_path

    ds = pydicom.dcmread(sample_path())
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = 2
    ds.ImagePositionPatient = [*ds.ImagePositionPatient[:2], ds.ImagePositionPatient[2] + 5]
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()[:-5000]


@pytest.mark.parametrize(
    "corrupt",
    [
        b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x40\x00",  # header cut short
        b"\0" * 128 + b"DICM" + b"garbage" * 40,
        "pixels cut short",
    ],
)
def test_corrupt_dcm_in_an_uploaded_series_is_refused(
    api: Api, store: Path, corrupt: bytes | str
) -> None:
    from medseg.data.samples import sample_path

    if corrupt == "pixels cut short":
        corrupt = _second_slice_cut_short()
    before = _files_in(store)
    files = [
        ("files", ("slice1.dcm", sample_path().read_bytes(), "application/dicom")),
        ("files", ("broken.dcm", corrupt, "application/dicom")),
    ]
    r = api.post("/api/images", files=files)
    assert r.status_code == 400, r.text
    assert "'broken.dcm'" in r.json()["detail"]
    assert str(store) not in r.text and ".incoming" not in r.text
    assert _files_in(store) == before
