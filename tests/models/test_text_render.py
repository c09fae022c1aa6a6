"""Cache-time helpers of the text head's training scripts (benchmarks/text_data.py,
benchmarks/text_train.py): 8-bit-export re-rendering of volume slices and sampling boosts."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
text_data = pytest.importorskip("text_data")


def test_render_variant_ct_is_monotone_8bit_and_seeded():
    hu = np.array([[-2000.0, -1024.0, -100.0, 0.0], [40.0, 150.0, 1600.0, 3000.0]], np.float32)
    a = text_data.render_variant(hu, "CT", np.random.default_rng(5))
    b = text_data.render_variant(hu, "CT", np.random.default_rng(5))
    assert a.shape == hu.shape and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert np.allclose(a * 255, np.round(a * 255), atol=1e-4)  # 8-bit levels
    flat = a.ravel()
    assert np.all(np.diff(flat) >= 0)  # HU order kept
    assert flat[0] == 0.0 and flat[1] == 0.0  # window starts at or above -1024 HU
    assert flat[-1] == 1.0 and flat[-2] == 1.0  # and ends at or below 1600 HU
    assert 0.0 < flat[4] < 1.0  # soft tissue (40 HU) inside every window


def test_render_variant_mr_uses_percentiles_and_constant_is_zero():
    mr = np.arange(1000, dtype=np.float32).reshape(10, 100)
    u = text_data.render_variant(mr, "MR", np.random.default_rng(0))
    assert u.min() == 0.0 and u.max() == 1.0
    assert np.all(np.diff(u.ravel()) >= 0)
    flat = text_data.render_variant(np.full((4, 4), 7.0), "MR", np.random.default_rng(0))
    assert np.array_equal(flat, np.zeros((4, 4), np.float32))


def test_parse_boost():
    text_train = pytest.importorskip("text_train")
    assert text_train.parse_boost("totalseg_ref=3, brats=0.5") == {
        "totalseg_ref": 3.0,
        "brats": 0.5,
    }
    assert text_train.parse_boost(None) == {}
    assert text_train.parse_boost("") == {}
