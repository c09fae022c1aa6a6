"""Export an image encoder to ONNX once, cache it on disk, run it with ONNX Runtime.

The cache file name carries the weights hash, the medseg version and the opset, so new
weights or a new medseg release never pick up a stale export. Files are written atomically
(temp file + rename), so a crash mid-export leaves no broken file behind.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from medseg._version import __version__
from medseg.io.atomic import atomic_path

__all__ = ["DEFAULT_CACHE_DIR", "OPSET", "encoder_onnx_path", "export_encoder", "OnnxEncoder"]

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("~/.cache/medseg")
OPSET = 17


def encoder_onnx_path(cache_dir: str | Path | None, model: str, weights_sha256: str) -> Path:
    """Cache path of an exported encoder: ``<cache_dir>/onnx/<model>-encoder-<sha16>-...onnx``."""
    root = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    name = f"{model}-encoder-{weights_sha256[:16]}-medseg{__version__}-opset{OPSET}.onnx"
    return root.expanduser() / "onnx" / name


def export_encoder(encoder: Any, path: Path, input_shape: tuple[int, ...]) -> Path:
    """Export a torch ``encoder`` taking one float32 tensor of ``input_shape`` to ``path``.

    Uses the TorchScript-based exporter (``dynamo=False``): it needs no extra packages and
    handles TinyViT's reshapes; the graph has a fixed input shape.
    """
    import torch

    dummy = torch.zeros(input_shape, dtype=torch.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python asserts in TinyViT
        torch.onnx.export(
            encoder.eval(),
            (dummy,),
            str(tmp),
            input_names=["image"],
            output_names=["embedding"],
            opset_version=OPSET,
            dynamo=False,
        )
    log.info("exported the image encoder to %s", path)
    return path


class OnnxEncoder:
    """An ONNX Runtime session running an exported encoder on the CPU."""

    def __init__(self, path: Path, num_threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
            options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Without this, ORT's idle worker threads spin after each run and steal the CPU from
        # the PyTorch mask decoder that runs next (measured: decoder 2-3x slower).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = Path(path)
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Run on a float32 ``(1, C, S, S)`` batch; returns the embedding array."""
        out = self._session.run(None, {"image": np.ascontiguousarray(batch, np.float32)})
        return out[0]
