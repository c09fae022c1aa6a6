"""A small LRU cache for image embeddings (one per image content hash and slice)."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["EmbeddingCache", "CacheInfo", "content_hash"]


def content_hash(array: np.ndarray, *extra: object) -> str:
    """BLAKE2b hex digest of an array's bytes, shape and dtype, plus ``extra`` values."""
    arr = np.ascontiguousarray(array)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((arr.shape, arr.dtype.str, *extra)).encode())
    digest.update(memoryview(arr).cast("B"))
    return digest.hexdigest()


@dataclass(frozen=True)
class CacheInfo:
    """Cache statistics: ``hits``, ``misses`` (= encoder runs), ``size`` and ``maxsize``."""

    hits: int
    misses: int
    size: int
    maxsize: int


class EmbeddingCache:
    """Least-recently-used mapping ``key -> embedding`` holding at most ``maxsize`` entries.

    A LiteMedSAM embedding takes 4 MiB (256 x 64 x 64 float32), so the default 32 entries
    use about 128 MiB.
    """

    def __init__(self, maxsize: int = 32) -> None:
        if int(maxsize) < 1:
            raise ValueError(f"cache size must be >= 1, got {maxsize}")
        self.maxsize = int(maxsize)
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._hits = 0
        self._misses = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value for ``key``; on a miss, ``compute()`` it and store it."""
        if key in self._data:
            self._data.move_to_end(key)
            self._hits += 1
            return self._data[key]
        self._misses += 1
        value = compute()
        self._data[key] = value
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)
        return value

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        self._data.clear()

    def info(self) -> CacheInfo:
        return CacheInfo(self._hits, self._misses, len(self._data), self.maxsize)
