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
    temporary cache folder, never ``~/.cache``); repeated inputs are embedded once
    (``tests/_support/encoder_memo.py``)."""
    from encoder_memo import memoize_encoder

    from medseg.models import create_model

    cache = tmp_path_factory.mktemp("medseg_cache")
    model = create_model("litemedsam", backend="onnx", cache_dir=str(cache), num_threads=2)
    return memoize_encoder(model)


@pytest.fixture(scope="session")
def default_model():
    """One default promptable model (``litemedsam+interactive``, 2 threads) for the whole
    session; repeated inputs are embedded once (``tests/_support/encoder_memo.py``)."""
    from encoder_memo import memoize_encoder

    from medseg.models import create_model

    return memoize_encoder(create_model("default", num_threads=2))


@pytest.fixture(scope="module")
def shared_default_model(default_model):
    """Let ``Predictor("default")`` and ``medseg segment`` (no ``--model``, no model options)
    reuse :func:`default_model` instead of loading and embedding with their own."""
    from medseg.models import registry

    real = registry.create_model
    names = ("default", "litemedsam+interactive")

    def create(name, **kw):
        return default_model if name in names and not kw else real(name, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "create_model", create)
        yield default_model
