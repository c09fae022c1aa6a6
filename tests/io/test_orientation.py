"""The display orientation rule (medseg.io.orientation) on small hand-built volumes."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import InputError
from medseg.io.image import Image
from medseg.io.orientation import (
    array_to_view,
    box_to_view,
    orient_slice,
    oriented,
    slice_view,
    unoriented,
    view_axes,
    view_image,
    view_shape,
    view_slice,
    view_to_array,
)

ARR = np.arange(2 * 3 * 4).reshape(2, 3, 4)  # (Z, Y, X)
RAS = Image(ARR, direction=np.diag([-1.0, -1.0, 1.0]))  # a NIfTI stored RAS
# A sagittal stack: array axis 0 runs L->R, axis 1 S->I, axis 2 A->P.
SAG = Image(ARR, direction=np.array([[0, 0, -1.0], [1.0, 0, 0], [0, -1.0, 0]]))


def test_ras_volume_axial_view_is_flipped_both_ways() -> None:
    assert view_axes(RAS, "axial") == {
        "depth": 0, "rows": 1, "cols": 2, "flip_rows": True, "flip_cols": True
    }  # fmt: skip
    assert view_slice(RAS, "axial", 1).tolist() == [
        [23, 22, 21, 20],
        [19, 18, 17, 16],
        [15, 14, 13, 12],
    ]
    assert slice_view(RAS) == "axial"
    assert view_image(RAS, "axial").array.tolist() == ARR[:, ::-1, ::-1].tolist()
    # the identity (LPS) volume is shown as stored
    lps = Image(ARR)
    assert view_image(lps, "axial") is lps
    first = ARR[0]
    assert orient_slice(lps, first) is first


def test_view_pixel_to_array_indices_on_a_ras_volume() -> None:
    # view pixel (col 0, row 0) of axial slice 1 is array voxel x=3, y=2, z=1 ...
    assert view_to_array(RAS, "axial", 0, 0, 1) == (3.0, 2.0, 1.0)
    assert ARR[1, 2, 3] == view_slice(RAS, "axial", 1)[0, 0] == 23
    # ... and back
    assert array_to_view(RAS, "axial", 3, 2, 1) == (0.0, 0.0, 1)
    assert view_to_array(RAS, "axial", 1, 2, 0) == (2.0, 0.0, 0.0)
    # a box is converted corner by corner and re-ordered
    assert box_to_view(RAS, "axial", (0, 0, 1, 2)) == (2.0, 0.0, 3.0, 2.0)
    # the same with a bare shape and the view_axes dict
    ax = view_axes(RAS, "axial")
    assert view_to_array((2, 3, 4), ax, 0, 0, 1) == (3.0, 2.0, 1.0)
    with pytest.raises(InputError, match="view_axes dict"):
        view_to_array((2, 3, 4), "axial", 0, 0, 1)


def test_coronal_view_slices_and_pixels() -> None:
    # RAS: coronal rows run S->I (array axis 0 reversed), columns R->L (x reversed)
    ax = view_axes(RAS, "coronal")
    assert ax == {"depth": 1, "rows": 0, "cols": 2, "flip_rows": True, "flip_cols": True}
    assert view_shape(RAS, "coronal") == (3, 2, 4)
    assert view_slice(RAS, "coronal", 2).tolist() == [[23, 22, 21, 20], [11, 10, 9, 8]]
    assert view_to_array(RAS, "coronal", 0, 1, 2) == (3.0, 2.0, 0.0)
    assert ARR[0, 2, 3] == view_slice(RAS, "coronal", 2)[1, 0]


def test_sagittal_stack_uses_its_own_slices() -> None:
    assert slice_view(SAG) == "sagittal"
    ax = view_axes(SAG, "sagittal")
    assert ax == {"depth": 0, "rows": 1, "cols": 2, "flip_rows": False, "flip_cols": False}
    assert view_image(SAG, "sagittal") is SAG
    assert view_axes(SAG, "axial")["depth"] == 1


def test_oriented_and_unoriented_are_inverse() -> None:
    vol = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    for direction in (np.eye(3), np.diag([-1.0, -1.0, 1.0]), SAG.direction):
        image = Image(vol, direction=direction)
        for view in ("axial", "coronal", "sagittal"):
            ax = view_axes(image, view)
            shown = oriented(vol, ax)
            assert shown.shape == view_shape(image, view)
            assert np.array_equal(unoriented(shown, ax), vol)
            for i in range(shown.shape[0]):
                for r in range(shown.shape[1]):
                    for c in range(shown.shape[2]):
                        x, y, z = view_to_array(image, view, c, r, i)
                        assert vol[int(z), int(y), int(x)] == shown[i, r, c]
                        assert array_to_view(image, view, x, y, z) == (c, r, i)


def test_orient_slice_of_a_transposed_in_plane_view() -> None:
    # array axis 1 runs L->R (x-like) and axis 2 A->P: the axial view's rows are axis 2
    direction = np.array([[0, -1.0, 0], [1.0, 0, 0], [0, 0, 1.0]])
    image = Image(ARR, direction=direction)
    ax = view_axes(image, "axial")
    assert ax == {"depth": 0, "rows": 2, "cols": 1, "flip_rows": False, "flip_cols": True}
    assert orient_slice(image, ARR[0]).tolist() == [[8, 4, 0], [9, 5, 1], [10, 6, 2], [11, 7, 3]]
    assert orient_slice(image, ARR[0]).tolist() == view_slice(image, "axial", 0).tolist()
    assert box_to_view(image, "axial", (1, 0, 3, 2)) == (0.0, 1.0, 2.0, 3.0)


def test_2d_images_are_shown_as_stored() -> None:
    flat = Image(np.arange(6).reshape(2, 3))
    assert view_axes(flat, "axial")["depth"] is None and slice_view(flat) == "axial"
    assert view_to_array(flat, "axial", 2, 1) == (2.0, 1.0)
    assert array_to_view(flat, "axial", 2, 1) == (2.0, 1.0, 0)
    with pytest.raises(InputError, match="only the axial view"):
        view_axes(flat, "coronal")
