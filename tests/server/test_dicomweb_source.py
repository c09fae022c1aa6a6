"""``medseg serve --dicomweb URL`` (medseg.server.dicomweb_source) against a fake DICOMweb
server (tests/_support/fake_pacs.py): listing beside the folder's images, fetching into
the bounded ``.dicomweb/`` cache (atomic), OHIF's lookup by SeriesInstanceUID, pushing a
saved label as DICOM-SEG, and 503 answers while the server is down. The same against a real
Orthanc: tests/server/test_dicomweb_orthanc.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dicom_validation import check_dciodvfy  # tests/_support
from fake_pacs import FakePacs
from fastapi.testclient import TestClient
from orthanc_server import SQUARE, ct_series

from medseg.errors import InputError
from medseg.io import load, load_label, save
from medseg.io.image import LabelMap
from medseg.server.app import create_app
from medseg.server.config import ServerConfig
from medseg.server.dicomweb_source import DicomwebSource

from .conftest import BASE_URL, Api

ROOT = "http://pacs.invalid:8042/dicom-web"


@pytest.fixture(scope="module")
def ct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The square CT series (4, 32, 40) of tests/_support/orthanc_server.py."""
    return ct_series(tmp_path_factory.mktemp("pacs") / "ct")


@pytest.fixture()
def pacs(ct: Path) -> FakePacs:
    fake = FakePacs()
    fake.add(ct)
    return fake


@pytest.fixture()
def make(tmp_path: Path, pacs: FakePacs) -> Iterator[Callable[..., tuple[Api, Any]]]:
    """``make(**config)`` -> (Api, app) on ``tmp_path/store`` (one PNG) with the fake PACS."""
    store = tmp_path / "store"
    save(np.full((8, 8), 7, np.uint8), store / "photo.png")
    clients: list[TestClient] = []

    def factory(**config: Any) -> tuple[Api, Any]:
        config = {"data_dir": store, "warmup": False, "dicomweb": ROOT, **config}
        app = create_app(ServerConfig(**config), model=object())
        source = app.state.medseg.datastore.remote
        if source is not None:
            source.api, source.list_ttl_s = pacs, 0.0
        clients.append(TestClient(app, base_url=BASE_URL))
        return Api(clients[-1], app.state.medseg.token), app

    yield factory
    for c in clients:
        c.close()


def _uid(pacs: FakePacs) -> str:
    return next(iter(pacs.series))


def _remote_id(api: Api) -> str:
    return next(
        im["id"] for im in api.get("/api/images").json() if im["name"].startswith("DICOMweb/")
    )


def _label_file(arr: np.ndarray, like: Any, folder: Path) -> bytes:
    path = save(LabelMap.like(like, arr.astype(np.uint8)), folder / "label.nii.gz")
    return path.read_bytes()


def _put_label(api: Api, ref: str, image: Any, folder: Path, params: str = "{}") -> Any:
    """MONAI Label save of the square mask on ``image``'s grid for the image ``ref``."""
    data = _label_file(_square(), image, folder)
    return api.put(f"/datastore/label?image={ref}", data={"params": params},
                   files={"label": ("label.nii.gz", data)})  # fmt: skip


def _square() -> np.ndarray:
    mask = np.zeros((4, 32, 40), np.uint8)
    mask[SQUARE] = 1
    return mask


def test_series_listed_beside_the_folder_and_fetched_on_open(make, pacs, ct, tmp_path):
    api, app = make()
    uid = _uid(pacs)
    images = api.get("/api/images").json()
    assert [im["name"] for im in images] == [f"DICOMweb/square (4 slices) [{uid[-8:]}]",
                                             "photo.png"]  # fmt: skip
    cache = tmp_path / "store" / ".dicomweb"
    assert pacs.downloads == 0 and not cache.exists()  # listing fetches nothing
    image_id = images[0]["id"]
    detail = api.get(f"/api/images/{image_id}").json()
    assert detail["shape"] == [4, 32, 40] and detail["modality"] == "CT" and detail["dicom"]
    assert sorted(p.name for p in (cache / uid).iterdir()) == [f"{i:05d}.dcm" for i in range(4)]
    assert sorted(p.name for p in cache.iterdir()) == [uid]
    assert api.get(f"/api/images/{image_id}/slice?index=1").status_code == 200
    np.testing.assert_array_equal(app.state.medseg.datastore.load(image_id).array, load(ct).array)
    assert pacs.downloads == 1  # opened again: from the cache
    series = api.get("/api/dicomweb/series").json()
    assert series["url"] == ROOT
    assert [(s["id"], s["series_uid"], s["cached"], s["local"]) for s in series["series"]] == [
        (image_id, uid, True, False)
    ]


def test_non_image_series_are_not_listed(make, pacs, ct, tmp_path):
    from medseg.io import save_dicom_seg

    seg = save_dicom_seg(LabelMap.like(load(ct), _square()), ct, tmp_path / "seg" / "s.dcm")
    pacs.add(seg.parent)
    api, _ = make()
    assert len(pacs.series) == 2
    names = [im["name"] for im in api.get("/api/images").json()]
    assert names == [f"DICOMweb/square (4 slices) [{_uid(pacs)[-8:]}]", "photo.png"]


def test_ohif_lookup_by_series_uid_and_label_save(make, pacs, tmp_path):
    api, app = make()
    uid = _uid(pacs)
    r = api.get(f"/datastore/image?image={uid}")
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"] == f'attachment; filename="{uid[:60]}.nrrd"'
    (tmp_path / "image.nrrd").write_bytes(r.content)
    assert load(tmp_path / "image.nrrd").shape == (4, 32, 40)
    image = app.state.medseg.datastore.load(_remote_id(api))
    data = _label_file(_square(), image, tmp_path)
    r = api.put(f"/datastore/label?image={uid}", data={"params": "{}"},
                files={"label": ("label.nii.gz", data)})  # fmt: skip
    assert r.json() == {"image": uid, "label": uid, "tag": "final", "version": 1}
    assert (tmp_path / "store" / "labels" / "dicomweb" / uid / "v0001.nii.gz").is_file()
    assert pacs.stored == []  # --dicomweb-push is off
    r = api.get(f"/datastore/label?label={uid}")
    (tmp_path / "back.nii.gz").write_bytes(r.content)
    np.testing.assert_array_equal(load_label(tmp_path / "back.nii.gz").array, _square())


def test_push_on_save_stores_a_valid_seg(make, pacs, ct, tmp_path):
    api, app = make(dicomweb_push=True)
    uid = _uid(pacs)
    image = app.state.medseg.datastore.load(_remote_id(api))
    params = '{"label_info": [{"name": "square", "idx": 1}]}'
    r = _put_label(api, uid, image, tmp_path, params)
    assert r.status_code == 200, r.text
    (seg,) = pacs.stored
    assert r.json()["dicomweb"] == {
        "stored_on": ROOT, "study_uid": str(seg.StudyInstanceUID),
        "series_uid": str(seg.SeriesInstanceUID), "sop_instance_uid": str(seg.SOPInstanceUID),
        "referenced_series_uid": uid,
    }  # fmt: skip
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == uid
    seg.save_as(tmp_path / "pushed.dcm", enforce_file_format=True)
    check_dciodvfy(tmp_path / "pushed.dcm")
    back = load_label(tmp_path / "pushed.dcm", reference=load(ct))
    assert back.label_names == {1: "square"}
    np.testing.assert_array_equal(back.array, _square())
    # params.push false overrides --dicomweb-push
    r = _put_label(api, uid, image, tmp_path, '{"push": false}')
    assert r.json()["version"] == 2 and "dicomweb" not in r.json() and len(pacs.stored) == 1


def test_push_route(make, pacs, tmp_path):
    api, app = make()
    image_id = _remote_id(api)
    image = app.state.medseg.datastore.load(image_id)
    r = api.post(f"/api/dicomweb/push/{image_id}")
    assert r.status_code == 404 and "no saved labels yet" in r.json()["detail"]
    _put_label(api, _uid(pacs), image, tmp_path)
    r = api.post(f"/api/dicomweb/push/{image_id}?version=1")
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 1 and r.json()["series_uid"] == str(
        pacs.stored[0].SeriesInstanceUID
    )
    photo = api.image_id("photo")
    local, _ = make(dicomweb=None)
    r = local.post(f"/api/dicomweb/push/{photo}")
    assert r.status_code == 404 and "start medseg serve --dicomweb URL" in r.json()["detail"]
    assert local.get("/api/dicomweb/series").status_code == 404


def test_explicit_push_of_a_local_image_is_refused(make, pacs, tmp_path):
    api, _ = make()
    photo = api.image_id("photo")
    data = save(LabelMap(np.ones((8, 8), np.uint8)), tmp_path / "l.png").read_bytes()
    r = api.put("/datastore/label?image=photo", data={"params": '{"push": true}'},
                files={"label": ("l.png", data)})  # fmt: skip
    assert r.status_code == 400
    assert r.json()["detail"] == ("label saved as version 1; push: photo.png is not a series "
                                  "of the DICOMweb server (medseg serve --dicomweb)")  # fmt: skip
    r = api.post(f"/api/dicomweb/push/{photo}")
    assert r.status_code == 400 and r.json()["detail"] == (
        "photo.png is not a DICOMweb series: only those are pushed"
    )
    assert pacs.stored == []


def test_pacs_down(make, pacs, tmp_path):
    api, app = make()
    uid = _uid(pacs)
    listed = api.get("/api/images").json()
    pacs.down = True
    # The folder's images stay usable; the last listing is kept (ids keep working).
    assert [im["name"] for im in api.get("/api/images").json()] == [im["name"] for im in listed]
    r = api.get("/api/dicomweb/series")
    assert r.status_code == 503 and "cannot reach the DICOMweb server" in r.json()["detail"]
    r = api.get(f"/api/images/{listed[0]['id']}")
    assert r.status_code == 503 and "cannot reach the DICOMweb server" in r.json()["detail"]
    assert list((tmp_path / "store" / ".dicomweb").iterdir()) == []  # nothing half-written
    pacs.down = False
    image = app.state.medseg.datastore.load(listed[0]["id"])  # now cached
    pacs.down = True
    assert api.get(f"/api/images/{listed[0]['id']}").status_code == 200  # from the cache
    r = _put_label(api, uid, image, tmp_path, '{"push": true}')
    assert r.status_code == 503
    detail = r.json()["detail"]
    assert detail.startswith(
        "the label was saved as version 1, but storing it on the DICOMweb server failed: "
        "http://pacs.invalid:8042/dicom-web: cannot reach"
    )
    assert detail.endswith(f"retry with POST /api/dicomweb/push/{listed[0]['id']}?version=1")
    assert [v["version"] for v in api.get(f"/api/images/{listed[0]['id']}/labels").json()] == [1]


def test_failed_fetch_leaves_nothing(make, pacs, tmp_path):
    api, _ = make()
    image_id = _remote_id(api)
    pacs.fail_after = 2
    r = api.get(f"/api/images/{image_id}")
    assert r.status_code == 503 and r.json()["detail"].endswith("failed: HTTP 503")
    assert list((tmp_path / "store" / ".dicomweb").iterdir()) == []
    assert api.get(f"/api/images/{image_id}").status_code == 200  # the next try works
    assert pacs.downloads == 2


def test_unknown_series_on_open(make, pacs, tmp_path):
    api, _ = make()
    image_id = _remote_id(api)
    pacs.series.clear()  # deleted on the PACS after the listing
    r = api.get(f"/api/images/{image_id}")
    assert r.status_code == 400 and "no series" in r.json()["detail"]
    assert list((tmp_path / "store" / ".dicomweb").iterdir()) == []


def test_local_copy_of_a_series_wins(make, pacs, ct, tmp_path):
    import shutil

    shutil.copytree(ct, tmp_path / "store" / "ct")
    api, _ = make()
    images = api.get("/api/images").json()
    assert [im["name"] for im in images] == ["ct/square (4 slices)", "photo.png"]
    series = api.get("/api/dicomweb/series").json()["series"]
    assert [(s["id"], s["local"]) for s in series] == [(images[0]["id"], True)]


def test_cache_is_bounded_and_crash_leftovers_go(pacs, tmp_path):
    other = ct_series(tmp_path / "other")
    pacs.add(other)
    (tmp_path / "store" / ".dicomweb" / ".partial-crashed").mkdir(parents=True)
    source = DicomwebSource(ROOT, tmp_path / "store", max_bytes=1, keep=1, api=pacs)
    assert not (tmp_path / "store" / ".dicomweb" / ".partial-crashed").exists()
    first, second = source.series()
    source.prepare(first)
    assert [p.name for p in source.cached()] == [first.series_uid]
    source.prepare(second)  # over max_bytes: the least recently used one goes
    assert [p.name for p in source.cached()] == [second.series_uid]
    source.max_bytes, source.keep = 10**9, 1
    source.prepare(first)
    assert [p.name for p in source.cached()] == [first.series_uid, second.series_uid]


def test_config_checks(tmp_path):
    with pytest.raises(InputError, match="not a DICOMweb URL"):
        ServerConfig(data_dir=tmp_path, dicomweb="ftp://pacs/x")
    with pytest.raises(InputError, match="dicomweb_push stores labels on the DICOMweb server"):
        ServerConfig(data_dir=tmp_path, dicomweb_push=True)


def test_serve_options_reach_the_config(tmp_path):
    import argparse

    from medseg.cli.commands import serve

    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    args = parser.parse_args([str(tmp_path), "--dicomweb", "dicomweb://h:1/dw", "--dicomweb-push",
                              "--dicomweb-cache-mb", "3"])  # fmt: skip
    config = serve._config(args)
    assert (config.dicomweb, config.dicomweb_push, config.dicomweb_cache_bytes) == (
        "dicomweb://h:1/dw", True, 3 * 2**20,
    )  # fmt: skip
    assert serve._config(parser.parse_args([str(tmp_path)])).dicomweb is None
