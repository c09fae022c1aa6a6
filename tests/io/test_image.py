"""Image / LabelMap geometry helpers and validation."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import InputError
from medseg.io import Image, LabelMap


def test_defaults_and_shape_helpers():
    img = Image(np.zeros((2, 3, 4, 3), np.uint8), channels=True)
    assert img.ndim == 3 and img.shape == (2, 3, 4) and img.num_channels == 3
    assert img.spacing == (1.0, 1.0, 1.0) and img.origin == (0.0, 0.0, 0.0)
    np.testing.assert_array_equal(img.direction, np.eye(3))
    assert not img.is_rgb and Image(np.zeros((2, 2, 3)), channels=True).is_rgb


def test_affine_uses_itk_index_order():
    img = Image(np.zeros((2, 3, 4)), spacing=(5.0, 2.0, 0.5), origin=(1, 2, 3))
    expected = np.array([[0.5, 0, 0, 1], [0, 2.0, 0, 2], [0, 0, 5.0, 3], [0, 0, 0, 1]], dtype=float)
    np.testing.assert_array_equal(img.affine, expected)


@pytest.mark.parametrize(
    ("direction", "code"),
    [
        (np.eye(3), "LPS"),
        (np.diag([-1.0, -1.0, 1.0]), "RAS"),
        (np.diag([-1.0, 1.0, 1.0]), "RPS"),
        (np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]), "LIP"),
    ],
)
def test_orientation_codes_match_nibabel(direction, code):
    img = Image(np.zeros((2, 2, 2)), direction=direction)
    assert img.orientation == code == img.nibabel_orientation


def test_2d_orientation():
    assert Image(np.zeros((2, 2))).orientation == "LP"
    assert Image(np.zeros((2, 2)), direction=np.diag([-1.0, 1.0])).nibabel_orientation == "RP"


def test_same_geometry_and_with_array():
    a = Image(np.zeros((2, 3)), spacing=(0.5, 0.25))
    b = a.with_array(np.ones((2, 3), np.float32))
    assert a.same_geometry(b) and b.array.dtype == np.float32
    assert not a.same_geometry(Image(np.zeros((2, 3)), spacing=(0.5, 0.3)))


def test_describe_ignores_nan_in_range():
    img = Image(np.array([[np.nan, 1.0], [-2.0, 3.0]]), meta={"path": "p", "format": "npy"})
    d = img.describe()
    assert (d["min"], d["max"], d["source"], d["format"]) == (-2.0, 3.0, "p", "npy")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"array": np.zeros(3)}, "2D or 3D"),
        ({"array": np.zeros((2, 2)), "spacing": (1.0,)}, "spacing needs 2 values"),
        ({"array": np.zeros((2, 2)), "spacing": (1.0, 0.0)}, "spacing must be positive"),
        ({"array": np.zeros((2, 2)), "origin": (0.0, np.inf)}, "origin must be finite"),
    ],
)
def test_image_validation(kwargs, message):
    with pytest.raises(InputError, match=message):
        Image(**kwargs)


def test_labelmap_conversion_and_validation():
    lab = LabelMap(np.array([[0.0, 2.0], [300.0, 0.0]]))
    assert lab.array.dtype == np.uint16 and lab.labels == [2, 300]
    assert LabelMap(np.array([[True, False]])).array.dtype == np.uint8
    np.testing.assert_array_equal(lab.mask(2), [[False, True], [False, False]])
    for arr, msg in (
        (np.array([[0.5]]), "non-integer"),
        (np.array([[-1]], np.int16), "negative"),
        (np.array([[1 + 2j]]), "must hold integers"),
    ):
        with pytest.raises(InputError, match=msg):
            LabelMap(arr)


def test_labelmap_like_copies_geometry():
    img = Image(np.zeros((2, 3)), spacing=(0.5, 0.25), origin=(4, 5), meta={"path": "x"})
    lab = LabelMap.like(img, np.ones((2, 3), np.uint8), {1: "a"})
    assert lab.same_geometry(img) and lab.label_names == {1: "a"} and lab.meta == {"path": "x"}
    with pytest.raises(InputError, match="does not match image shape"):
        LabelMap.like(img, np.ones((3, 3), np.uint8))
