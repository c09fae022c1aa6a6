"""medseg.io.dicomweb against a real Orthanc (child process with its DICOMweb plugin):
STOW a CT series, QIDO it, WADO it back, write and STOW a DICOM-SEG, read it back."""

from __future__ import annotations

import tempfile

import numpy as np
import pydicom
import pytest
from dicom_validation import check_dciodvfy  # tests/_support
from orthanc_server import SQUARE, ct_series, free_port, orthanc  # tests/_support

from medseg.errors import InputError
from medseg.io import LabelMap, load, load_label, save_dicom_seg
from medseg.io.dicomweb import (
    DicomwebRef,
    fetch_series,
    fetched_series,
    is_dicomweb_url,
    list_series,
    list_studies,
    parse_dicomweb_url,
    push_instances,
)

pytestmark = pytest.mark.slow  # starts Orthanc (about 3 s with its shutdown)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with orthanc(tmp_path_factory.mktemp("orthanc")) as srv:
        yield srv


@pytest.fixture
def tmpdir_empty(tmp_path, monkeypatch):
    """Temporary files go to a fresh folder; the test asserts it is empty at the end."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture(scope="module")
def ct_on_server(server, tmp_path_factory):
    """The square CT series, stored on the server; returns (local folder, study, series)."""
    folder = ct_series(tmp_path_factory.mktemp("ct") / "ct")
    ds = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True)
    stored = push_instances(server.root, sorted(folder.iterdir()))
    assert len(stored) == 4
    return folder, str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)


def test_parse_urls():
    ref = parse_dicomweb_url("dicomweb://pacs:8042/dicom-web/studies/1.2/series/1.2.3")
    assert ref == DicomwebRef("http://pacs:8042/dicom-web", "1.2", "1.2.3")
    assert str(ref) == "http://pacs:8042/dicom-web/studies/1.2/series/1.2.3"
    assert parse_dicomweb_url("dicomwebs://pacs/studies/9") == DicomwebRef("https://pacs", "9")
    assert parse_dicomweb_url("http://h:1/a/b", "5", "6") == DicomwebRef("http://h:1/a/b", "5", "6")
    assert is_dicomweb_url("dicomweb://h/x") and is_dicomweb_url("DICOMwebs://h/x")
    assert not is_dicomweb_url("http://h/x") and not is_dicomweb_url("/data/ct")
    with pytest.raises(InputError, match="not a DICOMweb URL"):
        parse_dicomweb_url("ftp://h/x")
    with pytest.raises(InputError, match=r"expected \.\.\./studies/STUDY or"):
        parse_dicomweb_url("dicomweb://h/studies/1/instances/2")


def test_qido_and_wado_roundtrip(server, ct_on_server, tmpdir_empty):
    folder, study, series = ct_on_server
    assert study in [s["study_uid"] for s in list_studies(server.root)]
    found = list_series(server.root, study)
    ct = [s for s in found if s.series_uid == series]
    assert len(ct) == 1 and ct[0].modality == "CT" and ct[0].num_instances == 4
    assert ct[0].description == "square"
    image = fetch_series(server.dicomweb(study, series))
    local = load(folder)
    assert image.shape == (4, 32, 40) and image.same_geometry(local, atol=1e-6)
    np.testing.assert_array_equal(image.array, local.array)
    assert image.meta["dicomweb"] == f"{server.root}/studies/{study}/series/{series}"
    assert not any(tmpdir_empty.iterdir())


def test_fetch_into_kept_folder(server, ct_on_server, tmp_path):
    _, study, series = ct_on_server
    image = fetch_series(server.root, study, series, tmp_path / "kept")
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == [
        f"{i:05d}.dcm" for i in range(4)
    ]
    assert load(tmp_path / "kept").same_geometry(image)
    with pytest.raises(InputError, match="not an empty folder"):
        fetch_series(server.root, study, series, tmp_path / "kept")


def test_seg_roundtrip_through_orthanc(server, ct_on_server, tmp_path, tmpdir_empty):
    _, study, series = ct_on_server
    with fetched_series(server.dicomweb(study, series)) as (image, src_dir):
        mask = LabelMap.like(image, (image.array > 0).astype(np.uint8), {1: "square"})
        seg_path = save_dicom_seg(mask, src_dir, tmp_path / "seg.dcm")
    expected = np.zeros((4, 32, 40), np.uint8)
    expected[SQUARE] = 1
    np.testing.assert_array_equal(mask.array, expected)
    check_dciodvfy(seg_path)
    seg = pydicom.dcmread(seg_path)
    push_instances(server.root, [seg])
    segs = [s for s in list_series(server.root, study) if s.modality == "SEG"]
    assert [s.series_uid for s in segs] == [str(seg.SeriesInstanceUID)]
    # Read the SEG back from Orthanc (WADO-RS) and rebuild it on the fetched CT grid.
    from dicomweb_client import DICOMwebClient

    (back_ds,) = DICOMwebClient(server.root).retrieve_series(study, segs[0].series_uid)
    back_ds.save_as(tmp_path / "back.dcm")
    assert back_ds.ReferencedSeriesSequence[0].SeriesInstanceUID == series
    ct = fetch_series(server.dicomweb(study, series))
    back = load_label(tmp_path / "back.dcm", reference=ct)
    assert back.same_geometry(ct, atol=1e-6) and back.label_names == {1: "square"}
    np.testing.assert_array_equal(back.array, expected)
    assert not any(tmpdir_empty.iterdir())


def test_unknown_series(server, ct_on_server, tmpdir_empty):
    _, study, _ = ct_on_server
    with pytest.raises(InputError, match=r"no series 1\.2\.3\.4 in study"):
        fetch_series(server.dicomweb(study, "1.2.3.4"))
    with pytest.raises(InputError, match=r"name a series"):
        fetch_series(server.root, study)
    assert not any(tmpdir_empty.iterdir())


def test_non_image_series(server, tmp_path, tmpdir_empty):
    """A SEG stored without its CT: fetching it as an image is refused."""
    folder = ct_series(tmp_path / "other")
    src = load(folder)
    arr = np.zeros(src.shape, np.uint8)
    arr[SQUARE] = 1
    seg = pydicom.dcmread(save_dicom_seg(LabelMap.like(src, arr), folder, tmp_path / "s.dcm"))
    push_instances(server.root, [seg])
    url = server.dicomweb(str(seg.StudyInstanceUID), str(seg.SeriesInstanceUID))
    with pytest.raises(InputError, match=r"is a SEG object, not an image series"):
        fetch_series(url)
    with pytest.raises(InputError, match="is a SEG object"), fetched_series(url):
        pass
    assert not any(tmpdir_empty.iterdir())


def test_server_down(tmp_path, tmpdir_empty):
    url = f"dicomweb://127.0.0.1:{free_port()}/dicom-web/studies/1.2/series/1.2.3"
    with pytest.raises(InputError, match=r"cannot reach the DICOMweb server"):
        fetch_series(url)
    with pytest.raises(InputError, match=r"cannot reach the DICOMweb server"):
        list_studies(url)
    with pytest.raises(InputError, match=r"cannot reach the DICOMweb server"):
        push_instances(url, sorted(ct_series(tmp_path / "ct").iterdir()))
    with pytest.raises(InputError, match="cannot reach"), fetched_series(url):
        pass
    assert not any(tmpdir_empty.iterdir())


def test_cli_segment_dicomweb_push(server, ct_on_server, tmp_path, tmpdir_empty, litemedsam,
                                   monkeypatch, capsys):  # fmt: skip
    """``medseg segment dicomweb://... -o seg.dcm --push``: WADO in, SEG out, STOW back."""
    from dicomweb_client import DICOMwebClient

    from medseg.cli.main import main
    from medseg.models import registry

    real = registry.create_model
    monkeypatch.setattr(
        registry, "create_model", lambda n, **kw: litemedsam if n == "litemedsam" else real(n, **kw)
    )
    _, study, series = ct_on_server
    out = tmp_path / "cli_seg.dcm"
    argv = ["segment", "--model", "litemedsam", server.dicomweb(study, series), "-o", str(out)]
    assert main([*argv, "--box3d", "10,8,1,28,22,2", "--push"]) == 0
    assert f"stored cli_seg.dcm on {server.root}" in capsys.readouterr().out
    check_dciodvfy(out)
    written = pydicom.dcmread(out)
    assert written.ReferencedSeriesSequence[0].SeriesInstanceUID == series
    (back_ds,) = DICOMwebClient(server.root).retrieve_series(study, str(written.SeriesInstanceUID))
    back_ds.save_as(tmp_path / "back.dcm")
    ct = fetch_series(server.dicomweb(study, series))
    mine = load_label(out, reference=ct)
    back = load_label(tmp_path / "back.dcm", reference=ct)
    assert back.same_geometry(ct, atol=1e-6)
    np.testing.assert_array_equal(back.array, mine.array)
    square = np.zeros(ct.shape, bool)
    square[SQUARE] = True
    found = back.array == 1
    assert 2 * (found & square).sum() / (found.sum() + square.sum()) > 0.8
    assert not found[[0, 3]].any()  # --box3d limits the slices
    assert not any(tmpdir_empty.iterdir())


def test_cli_push_needs_dicomweb_input(tmp_path, capsys):
    from medseg.cli.main import main

    folder = ct_series(tmp_path / "ct")
    argv = ["segment", str(folder), "-o", str(tmp_path / "s.dcm"), "--box3d", "1,1,1,5,5,2"]
    assert main([*argv, "--push"]) == 2
    assert "--push stores the DICOM-SEG on the input's DICOMweb server" in capsys.readouterr().err
    assert not (tmp_path / "s.dcm").exists()


def _one_slice_series(folder, image):
    """A one-slice MR series holding ``image`` ((H, W) uint8; stored + 1024 as the
    synthetic series' RescaleIntercept is -1024)."""
    from synthetic_dicom import write_series

    s = write_series(folder, shape=(1, *image.shape), spacing=(1.0, 1.0, 1.0), modality="MR",
                     iop=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), description="two classes")  # fmt: skip
    ds = pydicom.dcmread(s.files[0])
    ds.PixelData = (image.astype(np.int16) + 1024).tobytes()
    ds.save_as(s.files[0], enforce_file_format=True)
    return folder


def test_cli_auto_predict_dicomweb_push(server, tmp_path, tmpdir_empty, capsys):
    """``medseg auto predict MODEL dicomweb://... OUT --push``: a tiny trained 2D model on a
    one-slice series fetched from Orthanc; the SEG read back from Orthanc equals the model's
    label map of the fetched image, voxel by voxel."""
    import auto_model_helpers as helpers  # tests/_support

    from medseg.automatic.model import AutoModel
    from medseg.cli.main import main

    data = helpers.write_two_class_dataset(tmp_path / "ds")
    model_dir = helpers.train_tiny_model(data, tmp_path / "model", iterations=80)
    before = set(tmpdir_empty.iterdir())  # training's own temporary files
    image, truth = helpers.two_class_case(np.random.default_rng(11))
    folder = _one_slice_series(tmp_path / "mr", image)
    push_instances(server.root, sorted(folder.iterdir()))
    ds = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True)
    study, series = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)
    url = server.dicomweb(study, series)
    out = tmp_path / "out"
    assert main(["auto", "predict", str(model_dir), url, str(out), "--push"]) == 0
    seg_path = out / f"{series}.dcm"
    printed = capsys.readouterr().out
    assert f"stored {seg_path.name} on {server.root}" in printed
    assert f"wrote 1 segmentation(s) to {out}" in printed
    check_dciodvfy(seg_path)
    written = pydicom.dcmread(seg_path)
    assert written.ReferencedSeriesSequence[0].SeriesInstanceUID == series
    from dicomweb_client import DICOMwebClient

    (back_ds,) = DICOMwebClient(server.root).retrieve_series(study, str(written.SeriesInstanceUID))
    back_ds.save_as(tmp_path / "back.dcm")
    fetched = fetch_series(url)
    expected = AutoModel(model_dir).predict(fetched)
    back = load_label(tmp_path / "back.dcm", reference=fetched)
    assert back.shape == (40, 40) and back.same_geometry(fetched, atol=1e-6)
    assert back.label_names == {1: "disk", 2: "square"}
    np.testing.assert_array_equal(back.array, expected.array)
    disk = back.array == 1
    assert 2 * (disk & (truth == 1)).sum() / (disk.sum() + (truth == 1).sum()) > 0.7
    assert set(tmpdir_empty.iterdir()) == before  # the fetched series is gone


def test_cli_auto_predict_push_needs_dicomweb_input(tmp_path, capsys):
    from medseg.cli.main import main

    argv = ["auto", "predict", str(tmp_path / "m"), str(tmp_path / "x.png"), str(tmp_path / "o")]
    assert main([*argv, "--push"]) == 2
    assert "--push stores the DICOM-SEG on the input's DICOMweb server" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
