"""Fixtures for the medseg.io tests."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import pytest


def _synthetic_dicom():
    spec = importlib.util.spec_from_file_location(
        "medseg_tests_synthetic_dicom", Path(__file__).with_name("synthetic_dicom.py")
    )
    if spec.name in sys.modules:
        return sys.modules[spec.name]
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def make_series() -> Callable:
    """``make_series(folder, **options)`` writes a synthetic CT series (see
    ``synthetic_dicom.write_series``)."""
    return _synthetic_dicom().write_series
