"""DICOM series with irregular slice gaps: refused by default, mean grid only on request."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from medseg.errors import InputError
from medseg.io import load, load_label
from medseg.io.dicom_file import slice_geometry

_IOP_AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # normal +z


def test_slice_geometry_refuses_or_uses_the_mean_gap(caplog):
    positions = [[0, 0, 0], [0, 0, 10], [0, 0, 11], [0, 0, 12]]
    with pytest.raises(InputError, match=r"^where: irregular slice positions \(gaps 10, 1, 1 mm\)"):
        slice_geometry(_IOP_AXIAL, positions, (0.5, 0.5), "where")
    with caplog.at_level(logging.WARNING, logger="medseg"):
        order, geo = slice_geometry(_IOP_AXIAL, positions[::-1], (0.5, 0.5), "where", "mean")
    assert "using the mean gap 4 mm" in caplog.text
    assert order.tolist() == [3, 2, 1, 0]
    assert geo["spacing"] == (4.0, 0.5, 0.5) and geo["slice_gaps"] == [10.0, 1.0, 1.0]
    assert geo["uniform"] is False and geo["origin"] == (0.0, 0.0, 0.0)
    with pytest.raises(InputError, match=r"irregular must be one of \['error', 'mean'\]"):
        slice_geometry(_IOP_AXIAL, positions, (0.5, 0.5), "where", "nearest")


def test_rounding_jitter_is_read_with_a_warning(caplog):
    # Worst slice 0.01 mm off the 2.5 mm grid (0.4 % of the gap): not irregular.
    positions = [[0, 0, 0], [0, 0, 2.5], [0, 0, 5.01], [0, 0, 7.5]]
    with caplog.at_level(logging.WARNING, logger="medseg"):
        _, geo = slice_geometry(_IOP_AXIAL, positions, (1, 1), "jit")
    assert geo["spacing"][0] == pytest.approx(2.5) and geo["uniform"] is False
    assert "slice gaps are not uniform" in caplog.text


def test_irregular_series_folder(tmp_path, make_series, caplog):
    s = make_series(tmp_path / "irr", shape=(4, 3, 2), gaps=(5.0, 1.0, 1.0))
    with pytest.raises(InputError) as err:
        load(s.folder)
    msg = str(err.value)
    assert msg.startswith(f"{s.folder} series {s.series_uid}: irregular slice positions")
    assert "gaps 5, 1, 1 mm" in msg and "mean gap 2.333 mm" in msg
    assert "--allow-irregular-slices" in msg and "irregular='mean'" in msg
    with pytest.raises(InputError, match="irregular slice positions"):
        load_label(s.folder)
    with caplog.at_level(logging.WARNING, logger="medseg"):
        img = load(s.folder, irregular="mean")
    assert "using the mean gap 2.333 mm" in caplog.text
    np.testing.assert_allclose(img.spacing, (7 / 3, 0.7, 0.8), atol=1e-6)
    np.testing.assert_array_equal(img.array, s.hu)
    # Default coronal IOP: the slice normal is +y, the slices sit at y = 20, 25, 26, 27.
    expected = [[-10.0, 20.0 + d, 30.0] for d in (0, 5, 6, 7)]
    np.testing.assert_allclose(img.meta["slice_positions"], expected, atol=1e-4)
    np.testing.assert_allclose(img.meta["slice_gaps"], [5, 1, 1], atol=1e-4)
    assert img.meta["uniform_spacing"] is False


def test_regular_series_needs_no_opt_in(tmp_path, make_series, caplog):
    s = make_series(tmp_path / "reg", shape=(3, 3, 2), gaps=(2.5, 2.5))
    with caplog.at_level(logging.WARNING, logger="medseg"):
        img = load(s.folder)
    assert img.meta["uniform_spacing"] is True and not caplog.text
    assert load(s.folder, irregular="mean").same_geometry(img)


def test_bad_irregular_value(tmp_path, make_series):
    s = make_series(tmp_path / "d", shape=(3, 3, 2))
    with pytest.raises(InputError, match=r"irregular must be one of"):
        load(s.folder, irregular="drop")
