"""Int8 quantized ONNX encoder: cache, atomic write, agreement with fp32, backend option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.errors import InputError, ModelError
from medseg.models import onnx_quant
from medseg.models.litemedsam import BACKENDS, LiteMedSAMConfig, preprocess
from medseg.models.onnx_quant import DEFAULT_QUANT_MODE, quantize_encoder, quantized_onnx_path
from medseg.prompts import PromptSet

# Measured on the synthetic disc images below: cosine 0.9958 (200x160), 0.9962 (256x256).
MIN_COSINE = 0.99


def _tiny_model(path: Path, seed: int = 0) -> np.ndarray:
    """Write a one-MatMul ONNX model ``embedding = image @ W`` (image ``(1, 4, 16)``, ``W``
    ``(16, 8)``) to ``path``; returns ``W``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(seed).normal(0, 1, (16, 8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["image", "W"], ["embedding"])],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 4, 16])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 4, 8])],
        [numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return w


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    from medseg.models.onnx_export import OnnxEncoder

    return OnnxEncoder(path, num_threads=1)(x)


def test_quantized_path_sits_beside_fp32_and_names_the_mode(tmp_path: Path) -> None:
    fp32 = tmp_path / "onnx" / "litemedsam-encoder-abc-medseg1.2.3-opset17.onnx"
    path = quantized_onnx_path(fp32)
    assert path == fp32.with_name(
        "litemedsam-encoder-abc-medseg1.2.3-opset17-int8-dynamic-qint8-perchannel.onnx"
    )
    assert quantized_onnx_path(fp32, "dynamic-quint8").name.endswith("-int8-dynamic-quint8.onnx")
    with pytest.raises(InputError, match=r"unknown quantization mode 'int4'; choose from \("):
        quantized_onnx_path(fp32, "int4")


def test_quantized_file_is_cached_and_reused(tmp_path: Path, monkeypatch) -> None:
    fp32 = tmp_path / "enc.onnx"
    w = _tiny_model(fp32)
    calls: list[tuple[Path, Path, str]] = []
    real = onnx_quant._quantize

    def counting(src: Path, dst: Path, mode: str) -> None:
        calls.append((src, dst, mode))
        real(src, dst, mode)

    monkeypatch.setattr(onnx_quant, "_quantize", counting)
    first = quantize_encoder(fp32)
    mtime = first.stat().st_mtime_ns
    second = quantize_encoder(fp32)
    assert first == second == tmp_path / f"enc-int8-{DEFAULT_QUANT_MODE}.onnx"
    assert len(calls) == 1 and calls[0][0] == fp32 and calls[0][2] == DEFAULT_QUANT_MODE
    assert calls[0][1] != first  # written to a temporary name, then renamed
    assert second.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["enc.onnx", first.name])
    x = np.random.default_rng(1).normal(0, 1, (1, 4, 16)).astype(np.float32)
    out = _run(first, x)
    ref = x @ w
    assert out.shape == (1, 4, 8)
    # int8 weights and activations: error well under 5 % of the output scale
    assert np.abs(out - ref).max() < 0.05 * np.abs(ref).max()


def test_failed_quantization_leaves_no_partial_file(tmp_path: Path, monkeypatch) -> None:
    fp32 = tmp_path / "enc.onnx"
    _tiny_model(fp32)

    def failing(src: Path, dst: Path, mode: str) -> None:
        Path(dst).write_bytes(b"half a model")
        raise RuntimeError("quantizer crashed")

    monkeypatch.setattr(onnx_quant, "_quantize", failing)
    with pytest.raises(ModelError, match=r"cannot quantize enc.onnx .*quantizer crashed"):
        quantize_encoder(fp32)
    assert [p.name for p in tmp_path.iterdir()] == ["enc.onnx"]
    monkeypatch.undo()  # the next call quantizes for real: nothing stale was cached
    assert quantize_encoder(fp32).is_file()


def test_missing_fp32_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no fp32 ONNX encoder to quantize at"):
        quantize_encoder(tmp_path / "absent.onnx")
    assert list(tmp_path.iterdir()) == []


def test_unknown_backend_lists_every_choice() -> None:
    assert BACKENDS == ("auto", "torch", "onnx", "onnx-int8")
    expected = "unknown backend 'int4'; choose from ('auto', 'torch', 'onnx', 'onnx-int8')"
    with pytest.raises(ModelError) as info:
        LiteMedSAMConfig(backend="int4")
    assert str(info.value) == expected
    assert LiteMedSAMConfig(backend="onnx-int8").backend == "onnx-int8"


def _disc_image(shape: tuple[int, int], centre, radius, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    disc = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2
    return np.clip(0.2 + 0.6 * disc + rng.normal(0, 0.03, shape), 0, 1).astype(np.float32)


@pytest.mark.slow
def test_int8_encoder_agrees_with_fp32(litemedsam) -> None:
    """The int8 model made from the session's fp32 export (same cache folder): embedding
    cosine similarity above ``MIN_COSINE`` and nearly the same box mask."""
    from medseg.models import create_model

    cache = litemedsam.config.cache_dir
    int8 = create_model("litemedsam", backend="onnx-int8", cache_dir=cache, num_threads=2)
    img = _disc_image((200, 160), (90, 80), 35, seed=1)
    x, _ = preprocess(img)
    ref = litemedsam.encode_tensor(x).numpy().ravel()
    out = int8.encode_tensor(x).numpy().ravel()
    assert int8.encoder_backend == "onnx-int8" and litemedsam.encoder_backend == "onnx"
    assert out.shape == ref.shape == (256 * 64 * 64,)
    cosine = float(out @ ref / (np.linalg.norm(out) * np.linalg.norm(ref)))
    assert MIN_COSINE < cosine < 1.0  # close, and really a different (quantized) model
    fp32_files = [p for p in Path(cache, "onnx").iterdir() if "int8" not in p.name]
    assert len(fp32_files) == 1  # the int8 model reused the fp32 export
    assert quantized_onnx_path(fp32_files[0]).is_file()
    prompts = PromptSet(boxes=np.array([(45, 55, 115, 125)], float))
    m_ref = litemedsam.decode(litemedsam.encode(img), prompts).logits[0, 0] > 0
    m_int8 = int8.decode(int8.encode(img), prompts).logits[0, 0] > 0
    agreement = 2 * (m_ref & m_int8).sum() / (m_ref.sum() + m_int8.sum())
    assert m_ref.sum() > 2000 and agreement > 0.97
