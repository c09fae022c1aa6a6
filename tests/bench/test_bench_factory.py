"""``--threads``: the thread count reaches every model that has a ``num_threads`` option."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medseg.bench import BenchConfig, make_protocol, predictor_factory
from medseg.bench.engine import default_factory
from medseg.bench.factory import thread_options
from medseg.cli.main import main
from medseg.errors import InputError
from medseg.models import Decoded, PromptableModel, register_model
from medseg.models.registry import build_config

CREATED: list[tuple[str, Any]] = []  # (model name, config) of every test model built


@dataclass(frozen=True)
class ThreadedConfig:
    num_threads: int | None = None


@dataclass(frozen=True)
class PlainConfig:
    size: int = 1


class BoxModel(PromptableModel):
    """Bright pixels inside the box (a registered model the Predictor can run)."""

    prompt_kinds = frozenset({"box"})

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self.config = config
        CREATED.append((name, config))

    def encode(self, image: np.ndarray) -> np.ndarray:
        return np.asarray(image, np.float32)

    def decode(self, embedding: np.ndarray, prompts: Any, *, multimask: bool = False) -> Decoded:
        x0, y0, x1, y1 = (int(v) for v in prompts.boxes[0])
        inside = np.zeros(embedding.shape[:2], bool)
        inside[y0 : y1 + 1, x0 : x1 + 1] = True
        fg = inside & (embedding.reshape(*embedding.shape[:2], -1).mean(axis=-1) > 0.2)
        logits = np.where(fg, 5.0, -5.0).astype(np.float32)[None, None]
        return Decoded(logits=logits, scores=np.ones((1, 1), np.float32))


@register_model("bench-test-threaded")
def _threaded(**overrides: Any) -> BoxModel:
    name = "bench-test-threaded"
    return BoxModel(name, build_config(name, ThreadedConfig, overrides))


@register_model("bench-test-unthreaded")
def _unthreaded(**overrides: Any) -> BoxModel:
    name = "bench-test-unthreaded"
    return BoxModel(name, build_config(name, PlainConfig, overrides))


def _cli(data: Path, out: Path, *extra: str) -> dict[str, Any]:
    CREATED.clear()
    code = main(["bench", "interactive", str(data), "--model", "bench-test-threaded",
                 "--model", "bench-test-unthreaded", "--model", "nope", "--protocol", "box",
                 "--gallery-size", "0", "--out", str(out), *extra])  # fmt: skip
    assert code == 0
    return json.loads((out / "results.json").read_text())


def _summary(payload: dict, model: str) -> dict:
    return next(s for s in payload["summary"] if s["model"] == model)


@pytest.mark.slow
def test_threads_reach_models_with_num_threads(toy_dataset: Path, tmp_path: Path) -> None:
    payload = _cli(toy_dataset, tmp_path / "t3", "--threads", "3", "--jobs", "2")
    assert payload["config"]["threads"] == 3
    threaded = [c for n, c in CREATED if n == "bench-test-threaded"]
    assert threaded and all(c.num_threads == 3 for c in threaded)  # one Predictor per job
    assert [c for n, c in CREATED if n == "bench-test-unthreaded"]  # built without it
    for model in ("bench-test-threaded", "bench-test-unthreaded"):
        assert _summary(payload, model)["status"] == "ok"
    nope = _summary(payload, "nope")
    assert nope["status"] != "ok" and nope["reason"].startswith("unknown model 'nope'")


def test_no_threads_keeps_each_model_default(toy_dataset: Path, tmp_path: Path) -> None:
    payload = _cli(toy_dataset, tmp_path / "default")
    assert payload["config"]["threads"] is None
    assert {n: c for n, c in CREATED}["bench-test-threaded"].num_threads is None
    assert predictor_factory(None) is default_factory


def test_composite_models_get_threads_per_part(monkeypatch: pytest.MonkeyPatch) -> None:
    import medseg.inference

    calls: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(medseg.inference, "Predictor",
                        lambda name, **kw: calls.append((name, kw)) or name)  # fmt: skip
    factory = predictor_factory(1)
    assert factory("litemedsam+interactive") == "litemedsam+interactive"
    factory("litemedsam")
    assert calls == [
        ("litemedsam+interactive", {"progress": False, "litemedsam": {"num_threads": 1},
                                    "interactive": {"num_threads": 1}}),
        ("litemedsam", {"progress": False, "num_threads": 1}),
    ]  # fmt: skip
    assert thread_options("medseg-interactive", 2) == {"num_threads": 2}


def test_threads_must_be_positive() -> None:
    with pytest.raises(InputError, match="threads"):
        BenchConfig(models=("x",), protocols=(make_protocol("box"),), threads=0)


def test_model_options_reach_their_model(toy_dataset: Path, tmp_path: Path) -> None:
    """``--model-option MODEL:KEY=VALUE`` builds that model with the option (and wins over
    ``--threads``); an option without MODEL goes to every model."""
    payload = _cli(toy_dataset, tmp_path / "opt", "--threads", "2",
                   "--model-option", "bench-test-threaded:num_threads=5",
                   "--model-option", "bench-test-unthreaded:size=4")  # fmt: skip
    assert payload["config"]["model_options"] == {
        "bench-test-threaded": {"num_threads": 5},
        "bench-test-unthreaded": {"size": 4},
    }
    built = {n: c for n, c in CREATED}
    assert built["bench-test-threaded"].num_threads == 5
    assert built["bench-test-unthreaded"] == PlainConfig(size=4)


def test_model_options_without_threads_and_rejections(monkeypatch: pytest.MonkeyPatch) -> None:
    import medseg.inference

    calls: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(medseg.inference, "Predictor",
                        lambda name, **kw: calls.append((name, kw)) or name)  # fmt: skip
    factory = predictor_factory(None, {"litemedsam-clicks": {"decoder_weights": "w.pt"}})
    assert factory is not default_factory
    factory("litemedsam-clicks")
    factory("litemedsam")
    assert calls == [
        ("litemedsam-clicks", {"progress": False, "decoder_weights": "w.pt"}),
        ("litemedsam", {"progress": False}),
    ]
    with pytest.raises(InputError, match=r"not benchmarked: \['y'\]"):
        BenchConfig(models=("x",), protocols=(make_protocol("box"),),
                    model_options={"y": {"a": 1}})  # fmt: skip


def test_unknown_model_option_key_is_the_models_error(toy_dataset: Path, tmp_path: Path) -> None:
    """A key the model does not take fails that model's run with the model's own error
    (naming the option); nothing is evaluated, so the command exits 1."""
    code = main(["bench", "interactive", str(toy_dataset), "--model", "bench-test-unthreaded",
                 "--model-option", "colour=red", "--gallery-size", "0",
                 "--out", str(tmp_path / "bad")])  # fmt: skip
    assert code == 1
    payload = json.loads((tmp_path / "bad" / "results.json").read_text())
    summary = _summary(payload, "bench-test-unthreaded")
    assert summary["status"] != "ok"
    assert "unknown bench-test-unthreaded option(s) ['colour']" in summary["reason"]
