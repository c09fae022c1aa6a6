"""``load(path, key=..., index=...)``: multi-array NPZ files (MedMNIST style) and stacks."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import InputError
from medseg.io import load, load_label, save
from medseg.io.arrays import npz_arrays, npz_needs_key


@pytest.fixture
def mnist(tmp_path):
    """A tiny MedMNIST-like file: 3 RGB 2x2 train images, labels, and a 3D val stack."""
    train = np.arange(3 * 2 * 2 * 3, dtype=np.uint8).reshape(3, 2, 2, 3)
    val = np.arange(2 * 2 * 3 * 5, dtype=np.uint8).reshape(2, 2, 3, 5)
    path = tmp_path / "mini.npz"
    np.savez_compressed(path, train_images=train, train_labels=np.array([[0], [1], [2]], np.uint8),
                        val_images=val)  # fmt: skip
    return path, train, val


def test_npz_arrays_lists_keys_shapes_dtypes(mnist):
    path, _, _ = mnist
    assert npz_arrays(path) == [
        {"key": "train_images", "shape": [3, 2, 2, 3], "dtype": "uint8"},
        {"key": "train_labels", "shape": [3, 1], "dtype": "uint8"},
        {"key": "val_images", "shape": [2, 2, 3, 5], "dtype": "uint8"},
    ]
    assert npz_needs_key(["train_images", "val_images"])
    assert not npz_needs_key(["data", "spacing"]) and not npz_needs_key(["a", "image"])


def test_key_and_index_pick_one_sample(mnist):
    path, train, val = mnist
    img = load(path, key="train_images", index=1)
    assert img.shape == (2, 2) and img.is_rgb and img.modality == "RGB"
    np.testing.assert_array_equal(img.array, train[1])
    assert (img.meta["npz_key"], img.meta["index"]) == ("train_images", 1)
    np.testing.assert_array_equal(load(path, key="train_images", index=-1).array, train[2])
    vol = load(path, key="val_images", index=0)
    assert vol.shape == (2, 3, 5) and not vol.channels
    np.testing.assert_array_equal(vol.array, val[0])
    # Without index the (N, Z, Y, X) stack is 3D volumes stacked: 4D, refused with a hint.
    with pytest.raises(InputError, match=r"mini\.npz: array of shape \(2, 2, 3, 5\).*--index"):
        load(path, key="val_images")


def test_multi_array_npz_without_key_says_how_to_pick(mnist):
    path, _, _ = mnist
    msg = r"mini\.npz: NPZ has several arrays \(train_images \(3, 2, 2, 3\) uint8, .*--key NAME"
    with pytest.raises(InputError, match=msg):
        load(path)
    with pytest.raises(InputError, match="--key NAME"):
        load_label(path)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"key": "nope"}, r"mini\.npz: NPZ has no array 'nope'; its keys are \['train_images'"),
        ({"key": "train_images", "index": 3}, r"index 3 is out of range for 3 samples \(0\.\.2\)"),
        ({"key": "train_labels", "index": 0}, r"stacked array, but the array has shape \(3, 1\)"),
    ],
)
def test_bad_key_or_index(mnist, kwargs, match):
    with pytest.raises(InputError, match=match):
        load(mnist[0], **kwargs)


def test_index_on_npy_and_options_on_other_formats(tmp_path):
    stack = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    np.save(tmp_path / "s.npy", stack)
    assert load(tmp_path / "s.npy").shape == (2, 3, 4)  # a volume unless index is given
    np.testing.assert_array_equal(load(tmp_path / "s.npy", index=1).array, stack[1])
    with pytest.raises(InputError, match=r"s\.npy: --key/key only applies to NPZ"):
        load(tmp_path / "s.npy", key="image")
    nii = save(load(tmp_path / "s.npy"), tmp_path / "s.nii.gz")
    with pytest.raises(InputError, match=r"s\.nii\.gz: --index/index only applies to NPY/NPZ"):
        load(nii, index=0)


def test_label_key_and_saved_npz_still_default(tmp_path):
    labels = np.array([[[0, 1], [2, 0]], [[1, 1], [0, 0]]], np.uint8)
    np.savez(tmp_path / "m.npz", masks=labels, other=np.zeros(3))
    lab = load_label(tmp_path / "m.npz", key="masks", index=0)
    assert lab.labels == [1, 2]
    np.testing.assert_array_equal(lab.array, labels[0])
    np.savez(tmp_path / "one.npz", image=np.ones((2, 2)), extra=np.zeros(5))
    assert load(tmp_path / "one.npz").shape == (2, 2)  # "image" wins without a key


@pytest.mark.parametrize(
    ("name", "shape"),
    [("retinamnist.npz", (28, 28, 3)), ("adrenalmnist3d.npz", (28, 28, 28))],
)
def test_shared_medmnist(shared_data, name, shape):
    path = shared_data / "medmnist" / name
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    keys = [a["key"] for a in npz_arrays(path)]
    assert {"train_images", "train_labels", "val_images", "test_images"} <= set(keys)
    with pytest.raises(InputError, match="--key NAME"):
        load(path)
    img = load(path, key="train_images", index=0)
    assert img.array.shape == shape and img.array.dtype == np.uint8
    with np.load(path) as npz:
        np.testing.assert_array_equal(img.array, npz["train_images"][0])
