"""Unit tests of the server's building blocks: encodings, views, datastore, label store, CLI."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from medseg.cli.main import main
from medseg.errors import InputError
from medseg.io.image import Image
from medseg.server.config import ServerConfig, is_loopback
from medseg.server.datastore import Datastore, NotFound
from medseg.server.encoding import (
    png_decode_mask,
    png_encode_mask,
    rle_decode,
    rle_encode,
)
from medseg.server.labelstore import LabelInfo, LabelStore
from medseg.server.views import (
    auto_window,
    default_window,
    resolve_window,
    view_axes,
    view_image,
    view_shape,
    view_slice,
    window_names,
)


@pytest.mark.parametrize(
    "arr",
    [
        np.zeros((0, 3), np.uint8),
        np.array([[0, 0, 1], [1, 1, 0]], bool),
        np.random.default_rng(0).integers(0, 4, (3, 5, 7)).astype(np.uint8),
        np.full((4, 4), 300, np.uint16),
    ],
)
def test_rle_round_trip(arr: np.ndarray) -> None:
    enc = rle_encode(arr)
    assert sum(enc["counts"]) == arr.size
    dtype = np.uint16 if arr.dtype == np.uint16 else np.uint8
    assert np.array_equal(rle_decode(enc["shape"], enc["values"], enc["counts"], dtype), arr)


def test_rle_documented_example_and_errors() -> None:
    assert rle_encode(np.array([[0, 0, 1], [1, 1, 0]]))["counts"] == [2, 3, 1]
    with pytest.raises(InputError, match="add up"):
        rle_decode([2, 2], [0, 1], [2, 3])
    with pytest.raises(InputError, match="values but"):
        rle_decode([2, 2], [0], [2, 2])
    with pytest.raises(InputError, match=r"lie in 0\.\.4"):
        rle_decode([2, 2], [0, 1], [5, -1])
    with pytest.raises(InputError, match="more than"):
        rle_decode([2**20, 2**20], [0], [2**40])
    with pytest.raises(InputError, match="runs, more than"):
        rle_decode([2, 2], [0, 1, 0, 1, 0], [1, 1, 1, 1, 0])
    with pytest.raises(InputError, match="must be integers"):
        rle_decode(["a", 2], [0], [2])
    with pytest.raises(InputError, match="lie in"):
        rle_decode([1], [256], [1])


def test_png_mask_round_trip() -> None:
    block = np.random.default_rng(1).random((3, 9, 11)) > 0.5
    enc = png_encode_mask(block)
    assert np.array_equal(png_decode_mask(enc["shape"], enc["png"]), block)


def test_views_geometry_and_windows() -> None:
    arr = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    img = Image(arr, spacing=(3.0, 2.0, 1.0))  # identity direction: LPS
    assert np.array_equal(view_slice(img, "axial", 1), arr[1])
    assert np.array_equal(view_slice(img, "coronal", 1), arr[::-1, 1, :])  # head up
    assert np.array_equal(view_slice(img, "sagittal", 2), arr[::-1, :, 2])
    cor = view_image(img, "coronal")
    assert cor.shape == (3, 2, 4) and cor.spacing == (2.0, 3.0, 1.0)
    assert np.array_equal(cor.array[1], view_slice(img, "coronal", 1))
    assert view_image(img, "axial") is img
    feet_first = Image(arr, direction=np.diag([1.0, 1.0, -1.0]))
    assert np.array_equal(view_slice(feet_first, "coronal", 0), arr[:, 0, :])
    ras = Image(arr, direction=np.diag([-1.0, -1.0, 1.0]))  # a NIfTI stored RAS
    assert np.array_equal(view_slice(ras, "axial", 0), arr[0, ::-1, ::-1])
    assert view_axes(ras, "axial") == {"depth": 0, "rows": 1, "cols": 2,
                                       "flip_rows": True, "flip_cols": True}  # fmt: skip
    # A sagittal acquisition: array axis 0 runs L->R, axis 1 S->I, axis 2 A->P.
    sag = Image(arr, direction=np.array([[0, 0, -1.0], [1.0, 0, 0], [0, -1.0, 0]]))
    assert view_axes(sag, "axial")["depth"] == 1 and view_shape(sag, "sagittal") == (2, 3, 4)
    assert np.array_equal(view_slice(sag, "sagittal", 0), arr[0])
    assert resolve_window(img, None, 10.0, 4.0) == (8.0, 12.0)
    assert auto_window(Image(np.full((4, 4), 7, np.uint8))) == (127.5, 255.0)
    with pytest.raises(InputError):
        view_slice(img, "axial", 2)


def test_ct_windows_for_hu_data_of_unknown_modality() -> None:
    hu = Image(np.array([[-1000, 0], [40, 1200]], np.int16))
    assert window_names(hu)[:2] == ["soft_tissue", "lung"] and default_window(hu) == "soft_tissue"
    mr = Image(np.array([[0, 10], [400, 900]], np.int16), modality="MR")
    assert window_names(mr) == ["auto"]


def test_loopback_names() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")
    cfg = ServerConfig(data_dir=Path("."), port=8123)
    assert cfg.url("tok") == "http://127.0.0.1:8123/?token=tok"
    assert "evil.example" not in cfg.host_names
    with pytest.raises(InputError):
        ServerConfig(data_dir=Path("."), token="short")


def test_datastore_ignores_links_out_of_the_folder(store: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    (store / "photos" / "lesion.png").rename(outside)
    os.symlink(outside, store / "photos" / "link.png")
    ds = Datastore(store)
    assert not any("link" in e.name for e in ds.scan())
    with pytest.raises(NotFound):
        ds.get("0" * 16)


def test_label_versions_from_many_threads_are_all_kept(store: Path) -> None:
    ds = Datastore(store)
    entry = next(e for e in ds.scan() if "sample" in e.name)
    image = ds.load(entry.id)
    labels = LabelStore(ds)
    lab = [LabelInfo(1, "a", "#ff0000")]

    def save(k: int) -> int:
        arr = np.zeros(image.shape, np.uint8)
        arr[k, : k + 1] = 1
        return labels.save(entry, image, arr, lab, note=str(k)).version

    threads_out: list[int] = []
    workers = [threading.Thread(target=lambda k=k: threads_out.append(save(k))) for k in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(threads_out) == list(range(1, 9))
    for v in labels.versions(entry):  # each version holds exactly what its saver wrote
        k = int(v.note)
        assert v.voxels == {1: k + 1}
        _, arr = labels.read(entry, v.version, image)
        assert arr[k, : k + 1].all() and arr.sum() == k + 1
    folder = labels.folder(entry)
    (folder / "v0009.json").write_text("")  # a claimed, unfinished version is not listed
    assert [v.version for v in labels.versions(entry)] == list(range(1, 9))
    assert json.loads((folder / "v0001.json").read_text())["labels"][0]["name"] == "a"


def test_serve_cli_rejects_bad_setups(tmp_path: Path) -> None:
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert main(["serve", str(tmp_path), "--no-auth", "--host", "0.0.0.0"]) == 2
