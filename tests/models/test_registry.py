from __future__ import annotations

import numpy as np
import pytest

import medseg
from medseg.errors import ModelError
from medseg.models import Decoded, PromptableModel, create_model, list_models, registry
from medseg.models.litemedsam import LiteMedSAMConfig


class _Constant(PromptableModel):
    name = "constant"
    prompt_kinds = frozenset({"box"})

    def __init__(self, value: float = 1.0) -> None:
        self.value = value

    def encode(self, image: np.ndarray) -> tuple[int, int]:
        return image.shape[:2]

    def decode(self, embedding, prompts, *, multimask=False) -> Decoded:
        n = prompts.num_objects
        return Decoded(np.full((n, 1, *embedding), self.value, np.float32), np.ones((n, 1)))


def test_litemedsam_is_registered() -> None:
    assert "litemedsam" in list_models()
    assert "litemedsam" in medseg.list_models()
    assert registry.is_model("litemedsam") and not registry.is_model("nope")


def test_unknown_model_lists_available() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'nope'; available models: .*litemedsam"):
        create_model("nope")


def test_unknown_override_is_rejected() -> None:
    with pytest.raises(ModelError, match="unknown litemedsam option\\(s\\) \\['colour'\\]"):
        create_model("litemedsam", colour="red")
    with pytest.raises(ModelError, match="unknown backend 'gpu'"):
        create_model("litemedsam", backend="gpu")


def test_register_and_create(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @registry.register_model("constant")
    def constant(**overrides) -> _Constant:
        return _Constant(**overrides)

    assert "constant" in list_models()
    model = create_model("constant", value=-2.0)
    assert isinstance(model, _Constant) and model.value == -2.0
    registry.register_model("constant")(constant)  # same factory again: fine
    with pytest.raises(ModelError, match="already registered"):
        registry.register_model("constant")(lambda **kw: None)
    with pytest.raises(ModelError, match="lower-case"):
        registry.register_model("Bad Name")


def test_config_json_round_trip() -> None:
    cfg = LiteMedSAMConfig(backend="torch", cache_dir="/tmp/x", num_threads=2)
    assert LiteMedSAMConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ModelError, match="num_threads"):
        LiteMedSAMConfig(num_threads=0)
