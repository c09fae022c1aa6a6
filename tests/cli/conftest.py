"""Fixtures for the CLI tests."""

from __future__ import annotations

import pytest

from medseg.models import registry


@pytest.fixture
def shared_model(litemedsam, monkeypatch: pytest.MonkeyPatch):
    """Let the CLI reuse the session's LiteMedSAM instead of loading its own."""
    real = registry.create_model
    monkeypatch.setattr(
        registry,
        "create_model",
        lambda name, **kw: litemedsam if name == "litemedsam" else real(name, **kw),
    )
    return litemedsam
