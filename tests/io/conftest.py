"""Fixtures for the medseg.io tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import synthetic_dicom  # tests/_support (pytest's pythonpath)


@pytest.fixture
def make_series() -> Callable:
    """``make_series(folder, **options)`` writes a synthetic CT series (see
    ``synthetic_dicom.write_series``)."""
    return synthetic_dicom.write_series
