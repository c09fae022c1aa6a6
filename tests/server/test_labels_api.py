"""Saving, listing, restoring and exporting label versions through the API."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from medseg.io.readers import load_label
from medseg.server.encoding import rle_decode, rle_encode

from .conftest import Api

LABELS = [{"value": 1, "name": "canal", "color": "#E6194B"},
          {"value": 2, "name": "bone", "color": "#3cb44b"}]  # fmt: skip


def _labels_2d() -> np.ndarray:
    arr = np.zeros((128, 128), np.uint8)
    arr[45:60, 50:66] = 1
    arr[70:80, 30:90] = 2
    return arr


def _save(api: Api, image_id: str, arr: np.ndarray, note: str = "", labels=LABELS):
    body = {"labels": labels, "data": rle_encode(arr), "note": note}
    return api.post(f"/api/images/{image_id}/labels", json=body)


def test_save_list_read_restore_never_overwrites(api: Api, store: Path) -> None:
    ct = api.image_id("sample_ct")
    assert api.get(f"/api/images/{ct}/labels").json() == []
    assert api.get(f"/api/images/{ct}/labels/latest").status_code == 404
    first = _labels_2d()
    r = _save(api, ct, first, note="first pass")
    assert r.status_code == 201, r.text
    v1 = r.json()
    assert v1["version"] == 1 and v1["voxels"] == {"1": 240, "2": 600}
    assert v1["labels"][0]["color"] == "#e6194b" and v1["note"] == "first pass"
    files = sorted(p.name for p in (store / "labels").rglob("v0*"))
    assert files == ["v0001.json", "v0001.png"]
    saved = load_label(next((store / "labels").rglob("v0001.png")))
    assert np.array_equal(saved.array, first)
    second = np.zeros_like(first)
    second[10:20, 10:20] = 2
    assert _save(api, ct, second).json()["version"] == 2
    latest = api.get(f"/api/images/{ct}/labels/latest").json()
    assert latest["version"]["version"] == 2
    assert np.array_equal(
        rle_decode(**{k: latest["data"][k] for k in ("shape", "values", "counts")}), second
    )
    restored = api.post(f"/api/images/{ct}/labels/1/restore")
    assert restored.status_code == 201 and restored.json()["version"] == 3
    assert restored.json()["restored_from"] == 1
    got = api.get(f"/api/images/{ct}/labels/3").json()
    arr = rle_decode(**{k: got["data"][k] for k in ("shape", "values", "counts")})
    assert np.array_equal(arr, first)
    v1_png = next((store / "labels").rglob("v0001.png"))
    assert np.array_equal(load_label(v1_png).array, first)  # version 1 untouched
    assert [v["version"] for v in api.get(f"/api/images/{ct}/labels").json()] == [1, 2, 3]
    assert api.get("/api/images").json()[1]["versions"] == 3 or any(
        im["versions"] == 3 for im in api.get("/api/images").json())  # fmt: skip
    assert api.post(f"/api/images/{ct}/labels/9/restore").status_code == 404


def test_labels_survive_a_restart(make_api, store: Path) -> None:
    api = make_api()
    ct = api.image_id("sample_ct")
    assert _save(api, ct, _labels_2d()).status_code == 201
    again = make_api()  # a new app on the same folder, as after `medseg serve` restarts
    versions = again.get(f"/api/images/{ct}/labels").json()
    assert [v["version"] for v in versions] == [1]
    assert again.get(f"/api/images/{ct}/labels/latest").json()["data"]["shape"] == [128, 128]


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda b: b["data"].update(shape=[64, 64]), 422),  # counts do not add up
        (lambda b: b["data"]["counts"].__setitem__(0, b["data"]["counts"][0] + 1), 422),
        (lambda b: b.update(labels=b["labels"][:1]), 400),  # value 2 has no name
        (lambda b: b["labels"][0].update(color="red"), 422),
        (lambda b: b["labels"][1].update(value=1), 400),
        (lambda b: b["labels"][0].update(name=""), 422),
        (lambda b: b["data"]["counts"].__setitem__(0, -1), 422),
        (lambda b: b["data"]["values"].__setitem__(0, 70000), 422),
        (lambda b: b["data"].update(shape=[2**20, 2**20]), 422),
        (lambda b: b["data"]["values"].append(0), 422),
    ],
)
def test_bad_label_saves_are_rejected(api: Api, store: Path, mutate, status: int) -> None:
    ct = api.image_id("sample_ct")
    body = {"labels": [dict(x) for x in LABELS], "data": rle_encode(_labels_2d())}
    mutate(body)
    r = api.post(f"/api/images/{ct}/labels", json=body)
    assert r.status_code == status, r.text
    assert not list((store / "labels").rglob("v0*.png"))


def test_exports(api: Api, tmp_path: Path) -> None:
    ct = api.image_id("sample_ct")
    arr = _labels_2d()
    _save(api, ct, arr)
    nii = api.get(f"/api/images/{ct}/labels/latest/export", params={"format": "nifti"})
    assert nii.status_code == 200 and nii.content[:2] == b"\x1f\x8b"
    assert 'filename="CT_small_labels_v1.nii.gz"' in nii.headers["content-disposition"]
    (tmp_path / "l.nii.gz").write_bytes(nii.content)
    assert np.array_equal(load_label(tmp_path / "l.nii.gz").array, arr)
    png = api.get(f"/api/images/{ct}/labels/1/export", params={"format": "png"})
    assert np.array_equal(np.asarray(PILImage.open(io.BytesIO(png.content))), arr)
    seg = api.get(f"/api/images/{ct}/labels/1/export", params={"format": "dicom-seg"})
    assert seg.status_code == 200 and seg.content[128:132] == b"DICM"
    (tmp_path / "seg.dcm").write_bytes(seg.content)
    back = load_label(
        tmp_path / "seg.dcm", reference=api.client.app.state.medseg.datastore.load(ct)
    )
    assert np.array_equal(back.array.reshape(arr.shape), arr)
    assert back.label_names[1] == "canal"
    bad = api.get(f"/api/images/{ct}/labels/1/export", params={"format": "jpeg"})
    assert bad.status_code == 422


def test_volume_export_png_slice_and_no_dicom_seg(api: Api, tmp_path: Path) -> None:
    vol = api.image_id("phantom")
    arr = np.zeros((3, 40, 48), np.uint8)
    arr[0:2, 15:25, 20:30] = 1
    assert _save(api, vol, arr, labels=LABELS[:1]).status_code == 201
    assert next(iter(api.get(f"/api/images/{vol}/labels").json()))["file"] == "v0001.nii.gz"
    r = api.get(f"/api/images/{vol}/labels/1/export", params={"format": "png"})
    assert r.status_code == 400 and "per slice" in r.text
    r = api.get(f"/api/images/{vol}/labels/1/export", params={"format": "png", "index": 1})
    assert np.array_equal(np.asarray(PILImage.open(io.BytesIO(r.content))), arr[1])
    seg = api.get(f"/api/images/{vol}/labels/1/export", params={"format": "dicom-seg"})
    assert seg.status_code == 400 and "DICOM" in seg.text
    nii = api.get(f"/api/images/{vol}/labels/1/export")
    (tmp_path / "v.nii.gz").write_bytes(nii.content)
    assert np.array_equal(load_label(tmp_path / "v.nii.gz").array, arr)
