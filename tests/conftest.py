"""Shared fixtures. Real data lives in ``../shared/data`` beside the checkout; tests that need
it use the ``shared_data`` fixture and skip cleanly when it is absent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ``../shared/data``; skips the test when it is not there."""
    if not (SHARED_DATA / "manifest.json").is_file():
        pytest.skip("../shared/data is not available")
    return SHARED_DATA


@pytest.fixture(scope="session")
def manifest(shared_data: Path) -> dict:
    return json.loads((shared_data / "manifest.json").read_text())


@pytest.fixture(scope="session")
def litemedsam(tmp_path_factory: pytest.TempPathFactory):
    """One LiteMedSAM model for the whole test session (ONNX encoder, exported once into a
    temporary cache folder, never ``~/.cache``)."""
    from medseg.models import create_model

    cache = tmp_path_factory.mktemp("medseg_cache")
    return create_model("litemedsam", backend="onnx", cache_dir=str(cache), num_threads=2)
