"""Int8 quantization of an exported ONNX encoder, made once and cached beside the fp32 file.

ONNX Runtime's dynamic quantization (:func:`onnxruntime.quantization.quantize_dynamic`)
stores the weights of the ``MatMul``/``Gemm`` nodes as int8 and quantizes their activations
per run, so it needs no calibration images. Convolutions stay fp32: quantizing them
dynamically (``ConvInteger``) measured far worse (embedding cosine ~0.5 against fp32 on
LiteMedSAM's TinyViT) and no faster. Measured on TinyViT (``docs/models.md``): about 1.5x
faster on one CPU thread, embedding cosine similarity > 0.99 against the fp32 export.

The quantized file is named after the fp32 one plus the mode
(``<fp32 stem>-int8-<mode>.onnx``), so a new export (new weights, medseg version or opset)
never reuses a stale quantization, and it is written atomically (temp file + rename).

Note: on x86 CPUs without VNNI (AVX2 only), ONNX Runtime's u8 x s8 kernels can saturate;
``dynamic-quint8`` (uint8 weights) avoids that at some cost in accuracy and speed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from medseg.errors import InputError, ModelError
from medseg.io.atomic import atomic_path

__all__ = ["QUANT_MODES", "DEFAULT_QUANT_MODE", "quantized_onnx_path", "quantize_encoder"]

log = logging.getLogger(__name__)

# mode name -> quantize_dynamic arguments (weight type name, per-channel weight scales)
QUANT_MODES: dict[str, dict[str, Any]] = {
    "dynamic-qint8-perchannel": {"weight_type": "QInt8", "per_channel": True},
    "dynamic-quint8": {"weight_type": "QUInt8", "per_channel": False},
}
DEFAULT_QUANT_MODE = "dynamic-qint8-perchannel"
OP_TYPES = ("MatMul", "Gemm")


def _check_mode(mode: str) -> None:
    if mode not in QUANT_MODES:
        raise InputError(f"unknown quantization mode {mode!r}; choose from {tuple(QUANT_MODES)}")


def quantized_onnx_path(fp32_path: str | Path, mode: str = DEFAULT_QUANT_MODE) -> Path:
    """Cache path of the int8 version of ``fp32_path``: same folder, ``-int8-<mode>`` added."""
    _check_mode(mode)
    fp32_path = Path(fp32_path)
    return fp32_path.with_name(f"{fp32_path.stem}-int8-{mode}.onnx")


class _QuietQuantizer(logging.Filter):
    """Drops what ORT's quantizer logs on the root logger: a line per node below WARNING,
    and its "consider to run pre-processing" hint (measured: ORT's pre-processing changes
    neither the accuracy nor the speed here). Records of named loggers are not affected."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        return "run pre-processing before quantization" not in record.getMessage()


@contextmanager
def _quiet_root() -> Iterator[None]:
    root, hint = logging.getLogger(), _QuietQuantizer()
    root.addFilter(hint)
    try:
        yield
    finally:
        root.removeFilter(hint)


def _quantize(src: Path, dst: Path, mode: str) -> None:
    """Write the dynamically quantized model of ``src`` to ``dst`` (may leave ``dst`` partial
    on failure; :func:`quantize_encoder` cleans up)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    opts = QUANT_MODES[mode]
    with _quiet_root():
        quantize_dynamic(
            str(src),
            str(dst),
            weight_type=getattr(QuantType, opts["weight_type"]),
            per_channel=opts["per_channel"],
            op_types_to_quantize=list(OP_TYPES),
        )


def quantize_encoder(fp32_path: str | Path, mode: str = DEFAULT_QUANT_MODE) -> Path:
    """The cached int8 model of the fp32 ONNX file ``fp32_path``, quantized on first use.

    Returns the quantized file's path (:func:`quantized_onnx_path`). The file is written to a
    temporary name and renamed, so a failed or interrupted run leaves no partial file; an
    existing file is reused as it is.

    Raises:
        ModelError: ``fp32_path`` is missing or quantization fails.
        InputError: unknown ``mode``.
    """
    path = quantized_onnx_path(fp32_path, mode)
    if path.is_file():
        return path
    src = Path(fp32_path)
    if not src.is_file():
        raise ModelError(f"no fp32 ONNX encoder to quantize at {src}")
    try:
        with atomic_path(path) as tmp:
            _quantize(src, tmp, mode)
    except Exception as exc:  # onnx/ORT raise many types (protobuf, runtime, value errors)
        raise ModelError(f"cannot quantize {src.name} ({mode}): {exc}") from exc
    log.info("quantized the image encoder (%s) to %s", mode, path)
    return path
