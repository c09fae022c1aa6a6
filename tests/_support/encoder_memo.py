"""Session-wide memo of a model's image encoder for the test fixtures that share one model.

Many tests (fresh servers, CLI runs, volumes of identical slices) embed the same pixels again;
the encoder is deterministic, so :func:`memoize_encoder` makes a shared model answer a repeat
from a small LRU keyed by the input's bytes, shape and dtype. Everything above the model is
unchanged: a Predictor still calls ``model.encode`` on every cache miss (tests that count
those calls wrap this memo), and an input never seen is encoded as before.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import numpy as np

__all__ = ["memoize_encoder"]


def memoize_encoder(model: Any, size: int = 24) -> Any:
    """Give ``model`` (a PromptableModel instance) an ``encode`` that remembers the last
    ``size`` embeddings by input content; returns the model."""
    encode = model.encode
    memo: OrderedDict[tuple, Any] = OrderedDict()

    def remembered(image: Any) -> Any:
        arr = np.ascontiguousarray(image)
        key = (arr.shape, arr.dtype.str, hashlib.blake2b(arr.tobytes(), digest_size=16).digest())
        if key in memo:
            memo.move_to_end(key)
            return memo[key]
        out = encode(image)
        memo[key] = out
        if len(memo) > size:
            memo.popitem(last=False)
        return out

    model.encode = remembered
    return model
