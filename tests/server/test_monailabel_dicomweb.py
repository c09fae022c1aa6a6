"""DICOM-SEG through the MONAI Label API: ``/infer`` with ``output=dicom_seg`` (checked with
``dciodvfy``), and ``medseg serve --dicomweb`` against a real Orthanc (child process):
monailabel's own client infers on a series named by its SeriesInstanceUID (as OHIF names
it), saves the label, the server pushes it as DICOM-SEG (STOW-RS), and the SEG read back
from Orthanc equals the label voxel by voxel; the same round trip with a real CT series
from ``../shared/data`` (skipped without it)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from dicom_validation import check_dciodvfy  # tests/_support
from dicomweb_client import DICOMwebClient
from fastapi.testclient import TestClient
from monailabel_helpers import free_port, live_server
from orthanc_server import SQUARE, ct_series, orthanc

from medseg.io import LabelMap, load, load_label, save
from medseg.io.dicomweb import fetch_series, list_series, push_instances
from medseg.server.app import create_app
from medseg.server.config import ServerConfig

from .conftest import BASE_URL, Api

pytestmark = pytest.mark.slow  # the promptable model, Orthanc
CLICK = [19, 15, 1]  # [i, j, k]: inside the square of the CT series
PARAMS = {"label": "square", "foreground": [CLICK], "background": []}


@pytest.fixture(scope="module")
def ml_model() -> Any:
    from medseg.models.registry import create_model

    return create_model("default", num_threads=2)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with orthanc(tmp_path_factory.mktemp("orthanc")) as srv:
        yield srv


def _app(model: Any, data_dir: Path, **config: Any) -> Any:
    config = {"data_dir": data_dir, "warmup": False, "port": free_port(), **config}
    return create_app(ServerConfig(**config), model=model)


def _infer(api: Api, image: str, output: str) -> Any:
    import json

    r = api.post(f"/infer/deepgrow?image={image}&output={output}",
                 data={"params": json.dumps(PARAMS)})  # fmt: skip
    assert r.status_code == 200, r.text
    return r


def _seg_back(server: Any, study: str, tmp: Path) -> tuple[Path, Any]:
    """The one SEG series of ``study`` on Orthanc, saved as ``tmp/back.dcm``."""
    segs = [s for s in list_series(server.root, study) if s.modality == "SEG"]
    assert len(segs) == 1
    (ds,) = DICOMwebClient(server.root).retrieve_series(study, segs[0].series_uid)
    ds.save_as(tmp / "back.dcm", enforce_file_format=True)
    return tmp / "back.dcm", ds


def test_infer_output_dicom_seg_is_valid(ml_model: Any, tmp_path: Path) -> None:
    """``output=dicom_seg`` on a DICOM series of the folder: a dciodvfy-clean SEG that
    references the series and holds the label map ``output=image`` sends."""
    folder = ct_series(tmp_path / "store" / "ct")
    app = _app(ml_model, tmp_path / "store")
    with TestClient(app, base_url=BASE_URL) as client:
        api = Api(client, app.state.medseg.token)
        uid = str(pydicom.dcmread(next(folder.iterdir())).SeriesInstanceUID)
        seg = _infer(api, uid, "dicom_seg")
        assert seg.headers["content-type"] == "application/dicom"
        assert 'filename="seg.dcm"' in seg.headers["content-disposition"]
        (tmp_path / "seg.dcm").write_bytes(seg.content)
        (tmp_path / "label.nii.gz").write_bytes(_infer(api, uid, "image").content)
    check_dciodvfy(tmp_path / "seg.dcm")
    ds = pydicom.dcmread(tmp_path / "seg.dcm")
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == uid
    source = load(folder)
    back = load_label(tmp_path / "seg.dcm", reference=source)
    expected = load_label(tmp_path / "label.nii.gz").array
    assert back.label_names == {1: "square"} and back.same_geometry(source, atol=1e-6)
    np.testing.assert_array_equal(back.array, expected)
    square = np.zeros(source.shape, bool)
    square[SQUARE] = True
    found = back.array == 1
    assert 2 * (found & square)[1].sum() / (found[1].sum() + square[1].sum()) > 0.8


def test_orthanc_round_trip_with_monailabel_client(
    ml_model: Any, server: Any, tmp_path: Path
) -> None:
    from monailabel.client import client as client_mod

    folder = ct_series(tmp_path / "pacs" / "ct")
    first = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True)
    study, uid = str(first.StudyInstanceUID), str(first.SeriesInstanceUID)
    push_instances(server.root, sorted(folder.iterdir()))
    store = tmp_path / "store"
    store.mkdir()
    app = _app(ml_model, store, dicomweb=server.root, dicomweb_push=True, auth=False)
    with live_server(app) as url:
        client = client_mod.MONAILabelClient(url, tmpdir=str(tmp_path))
        assert client.info()["datastore"]["total"] >= 1
        result_file, result = client.infer("deepgrow", uid, {**PARAMS, "result_extension":
                                                             ".nii.gz"})  # fmt: skip
        assert result["label_names"] == {"square": 1}
        assert (store / ".dicomweb" / uid).is_dir()  # fetched when first used
        saved = client.save_label(uid, result_file, params={"label_info": [
            {"name": "square", "idx": 1}]})  # fmt: skip
        assert saved["version"] == 1 and saved["dicomweb"]["referenced_series_uid"] == uid
        label = load_label(client.download_label(uid, "final")).array
    seg_path, ds = _seg_back(server, study, tmp_path)
    assert str(ds.SeriesInstanceUID) == saved["dicomweb"]["series_uid"]
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == uid
    check_dciodvfy(seg_path)
    ct = fetch_series(server.dicomweb(study, uid))
    back = load_label(seg_path, reference=ct)
    assert back.same_geometry(ct, atol=1e-6) and back.label_names == {1: "square"}
    np.testing.assert_array_equal(back.array, label)
    assert label[1][SQUARE[1:]].mean() > 0.8  # the click found the square on its slice
    assert not label[[0, 2, 3]].any()  # deepgrow: that slice only


def _with_uids(src: Path, dst: Path) -> Path:
    """Copies of the series in ``src`` with the Study/Series (and SOP Instance) UIDs that
    medseg's DICOM-SEG writer generates for blank ones, so Orthanc can store them."""
    from medseg.io.dicomseg import stable_uid

    dst.mkdir(parents=True)
    datasets = [pydicom.dcmread(f) for f in sorted(src.iterdir()) if f.is_file()]
    for ds in datasets:
        if not str(ds.get("SOPInstanceUID", "") or ""):
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    sops = [str(ds.SOPInstanceUID) for ds in datasets]
    for i, ds in enumerate(datasets):
        for tag, kind in (("StudyInstanceUID", "study"), ("SeriesInstanceUID", "series")):
            if not str(ds.get(tag, "") or "").strip():
                setattr(ds, tag, stable_uid(kind, sops))
        ds.save_as(dst / f"{i:05d}.dcm", enforce_file_format=True)
    return dst


def test_orthanc_round_trip_of_a_real_ct_series(
    ml_model: Any, server: Any, shared_data: Path, tmp_path: Path
) -> None:
    """TotalSegmentator's example CT (20 slices, blank UIDs in the export) on Orthanc:
    opened through the MONAI Label API by SeriesInstanceUID, a bone mask saved and pushed,
    the SEG read back from Orthanc equals it on the series' grid."""
    src = shared_data / "totalseg_ref" / "dicom" / "example_ct_dicom"
    folder = _with_uids(src, tmp_path / "ct")
    first = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True)
    study, uid = str(first.StudyInstanceUID), str(first.SeriesInstanceUID)
    push_instances(server.root, sorted(folder.iterdir()))
    store = tmp_path / "store"
    store.mkdir()
    app = _app(ml_model, store, dicomweb=server.root)
    with TestClient(app, base_url=BASE_URL) as client:
        api = Api(client, app.state.medseg.token)
        r = api.get(f"/datastore/image?image={uid}")
        assert r.status_code == 200, r.text
        (tmp_path / "image.nrrd").write_bytes(r.content)
        image = load(tmp_path / "image.nrrd")
        local = load(folder)
        assert image.shape == local.shape == (20, 512, 512)
        assert image.same_geometry(local, atol=1e-4)
        bone = (local.array > 200).astype(np.uint8)
        assert bone.sum() > 100
        data = save(LabelMap.like(image, bone), tmp_path / "bone.nii.gz").read_bytes()
        r = api.put(f"/datastore/label?image={uid}", files={"label": ("bone.nii.gz", data)},
                    data={"params": '{"push": true, "label_names": {"bone": 1}}'})  # fmt: skip
        assert r.status_code == 200, r.text
    seg_path, ds = _seg_back(server, study, tmp_path)
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == uid
    check_dciodvfy(seg_path)
    back = load_label(seg_path, reference=local)
    assert back.same_geometry(local, atol=1e-6) and back.label_names == {1: "bone"}
    np.testing.assert_array_equal(back.array, bone)
    shutil.rmtree(store)
