"""CT windows and normalisation on hand-built arrays."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import InputError
from medseg.io import CT_WINDOWS, CTWindow, apply_ct_window, display_window, percentile_normalize
from medseg.io.intensity import minmax_normalize


def test_ct_window_soft_tissue_exact():
    hu = np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0])
    np.testing.assert_allclose(apply_ct_window(hu), [0.0, 0.0, 0.5, 1.0, 1.0])
    assert CT_WINDOWS["lung"].low == -1350 and CT_WINDOWS["lung"].high == 150
    np.testing.assert_allclose(apply_ct_window(np.array([0.0]), CTWindow(0, 10)), [0.5])


def test_window_errors():
    with pytest.raises(InputError, match="unknown CT window 'nope'"):
        apply_ct_window(np.zeros(2), "nope")
    with pytest.raises(InputError, match="width must be positive"):
        apply_ct_window(np.zeros(2), CTWindow(0, 0))
    with pytest.raises(InputError, match="NaN or inf"):
        apply_ct_window(np.array([np.nan]))


def test_percentile_and_minmax():
    a = np.arange(101, dtype=np.float64)
    out = percentile_normalize(a, 10, 90)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[[0, 10, 50, 90, 100]], [0, 0, 0.5, 1, 1], atol=1e-6)
    np.testing.assert_array_equal(minmax_normalize(np.full((2, 2), 7.0)), np.zeros((2, 2)))
    with pytest.raises(InputError, match="percentiles must satisfy"):
        percentile_normalize(a, 50, 40)


def test_display_window_by_modality():
    np.testing.assert_allclose(display_window(np.array([40.0]), "CT"), [0.5])
    np.testing.assert_allclose(display_window(np.array([0, 255], np.uint8)), [0.0, 1.0])
    np.testing.assert_allclose(display_window(np.array([0.0, 5.0, 10.0]), "MR"), [0, 0.5, 1])


def test_normalisations_do_not_touch_the_input_and_give_float32() -> None:
    """The in-place arithmetic works on a private copy: the caller's array is unchanged,
    and the values are exactly those of the plain expressions."""
    import numpy as np

    from medseg.io.intensity import apply_ct_window, minmax_normalize, percentile_normalize

    hu = np.array([[-1200, -160, 40], [240, 400, 3000]], np.int16)
    ct = apply_ct_window(hu, "soft_tissue")  # centre 40, width 400: -160..240
    assert ct.dtype == np.float32
    np.testing.assert_array_equal(ct, np.array([[0, 0, 0.5], [1, 1, 1]], np.float32))
    f = np.array([[-1.0, 0.0], [1.0, 3.0]], np.float32)
    before = f.copy()
    np.testing.assert_array_equal(
        apply_ct_window(f, "soft_tissue"), (np.clip(f, -160, 240) + 160) / 400
    )
    np.testing.assert_array_equal(minmax_normalize(f), np.array([[0, 0.25], [0.5, 1]], np.float32))
    p = percentile_normalize(f, 0, 100)
    assert p.dtype == np.float32
    np.testing.assert_array_equal(p, np.array([[0, 0.25], [0.5, 1]], np.float32))
    np.testing.assert_array_equal(f, before)
