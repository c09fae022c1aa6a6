"""Least-recently-used caches bounded by entry count and by bytes (one rule, one home).

- :class:`MemoryBudget`: a byte budget shared by several :class:`ByteLRU` caches. When the
  caches sharing it hold more than ``max_bytes`` together, the least recently used entry of
  *all* of them is dropped first, until they fit. The entry being stored or used is never
  dropped, so a value larger than the whole budget is kept alone (and dropped by the next
  store or use of another entry).
- :class:`ByteLRU`: one cache, optionally also bounded to ``max_entries`` (its own least
  recently used entry goes first). Sizes come from :func:`nbytes` (or ``sizeof``) when an
  entry is stored; :meth:`ByteLRU.touch` measures a value again (a predictor whose arrays
  changed).
- :class:`EmbeddingCache`: the :class:`medseg.Predictor`'s image embeddings (one per image
  content hash and slice) on a :class:`ByteLRU`.

All three are thread-safe: caches sharing a budget share its lock.
"""

from __future__ import annotations

import hashlib
import itertools
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ByteLRU", "CacheInfo", "EmbeddingCache", "MemoryBudget", "content_hash", "nbytes"]


def content_hash(array: np.ndarray, *extra: object) -> str:
    """BLAKE2b hex digest of an array's bytes, shape and dtype, plus ``extra`` values."""
    arr = np.ascontiguousarray(array)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((arr.shape, arr.dtype.str, *extra)).encode())
    digest.update(memoryview(arr).cast("B"))
    return digest.hexdigest()


def nbytes(value: Any) -> int:
    """Bytes held by ``value``: a numpy array's ``nbytes``, an object's ``nbytes`` attribute
    (embeddings, torch tensors), the ``array`` of a :class:`medseg.io.Image`, the sum over
    a dict's values or a list/tuple's items, else ``sys.getsizeof``."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    size = getattr(value, "nbytes", None)
    if isinstance(size, int | np.integer) and not isinstance(size, bool):
        return int(size)
    array = getattr(value, "array", None)
    if isinstance(array, np.ndarray):
        return int(array.nbytes)
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(nbytes(k) + nbytes(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return sys.getsizeof(value) + sum(nbytes(v) for v in value)
    return int(sys.getsizeof(value))


@dataclass(frozen=True)
class CacheInfo:
    """Cache statistics: ``hits``, ``misses`` (= computations), ``size`` (entries),
    ``maxsize`` (entries, None: unbounded), ``nbytes`` held and ``max_bytes`` (of the
    budget, None: unbounded)."""

    hits: int
    misses: int
    size: int
    maxsize: int | None
    nbytes: int = 0
    max_bytes: int | None = None


class MemoryBudget:
    """A byte budget shared by caches (see the module docstring); ``max_bytes`` None:
    no byte bound."""

    def __init__(self, max_bytes: int | None = None) -> None:
        if max_bytes is not None and int(max_bytes) < 1:
            raise ValueError(f"a memory budget must be >= 1 byte, got {max_bytes}")
        self.max_bytes = None if max_bytes is None else int(max_bytes)
        self.lock = threading.RLock()
        self._caches: weakref.WeakSet[ByteLRU] = weakref.WeakSet()
        self._clock = itertools.count()

    @property
    def nbytes(self) -> int:
        """Bytes held by the caches sharing this budget."""
        with self.lock:
            return sum(c.nbytes for c in list(self._caches))

    def _register(self, cache: ByteLRU) -> None:
        with self.lock:
            self._caches.add(cache)

    def _tick(self) -> int:
        return next(self._clock)

    def _fit(self, keep: tuple[ByteLRU, Hashable]) -> None:
        """Drop the least recently used entries of all caches (never ``keep``) until the
        caches hold at most ``max_bytes``. Call with ``lock`` held."""
        if self.max_bytes is None:
            return
        caches = list(self._caches)
        total = sum(c.nbytes for c in caches)
        while total > self.max_bytes:
            oldest: tuple[int, ByteLRU, Hashable] | None = None
            for cache in caches:
                found = cache._oldest(keep)
                if found is not None and (oldest is None or found[0] < oldest[0]):
                    oldest = (found[0], cache, found[1])
            if oldest is None:  # only ``keep`` is left
                return
            total -= oldest[1]._drop(oldest[2])


class _Entry:
    __slots__ = ("size", "tick", "value")

    def __init__(self, value: Any, size: int, tick: int) -> None:
        self.value, self.size, self.tick = value, size, tick


class ByteLRU:
    """A least-recently-used mapping bounded by ``max_entries`` and by a byte ``budget``.

    Args:
        max_entries: most entries kept (None: no count bound).
        budget: a :class:`MemoryBudget` shared with other caches, a byte count (a budget
            of its own) or None (no byte bound).
        sizeof: bytes of a value (default :func:`nbytes`).
        on_evict: called with ``(key, value)`` for every entry dropped to fit the bounds.
    """

    def __init__(
        self,
        max_entries: int | None = None,
        budget: MemoryBudget | int | None = None,
        sizeof: Callable[[Any], int] = nbytes,
        on_evict: Callable[[Hashable, Any], None] | None = None,
    ) -> None:
        if max_entries is not None and int(max_entries) < 1:
            raise ValueError(f"cache size must be >= 1, got {max_entries}")
        self.max_entries = None if max_entries is None else int(max_entries)
        self.budget = budget if isinstance(budget, MemoryBudget) else MemoryBudget(budget)
        self.sizeof = sizeof
        self.on_evict = on_evict
        self._data: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._nbytes = 0
        self.budget._register(self)

    @property
    def nbytes(self) -> int:
        """Bytes of the entries held (as measured when stored or touched)."""
        return self._nbytes

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value of ``key`` (now the most recently used), or ``default``."""
        with self.budget.lock:
            entry = self._data.get(key)
            if entry is None:
                return default
            self._data.move_to_end(key)
            entry.tick = self.budget._tick()
            return entry.value

    def put(self, key: Hashable, value: Any) -> None:
        """Store ``value`` as the most recently used entry, then drop entries to fit."""
        size = int(self.sizeof(value))
        with self.budget.lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._nbytes -= old.size
            self._data[key] = _Entry(value, size, self.budget._tick())
            self._nbytes += size
            self._fit(key)

    def touch(self, key: Hashable) -> None:
        """Measure ``key``'s value again (it may have grown), mark it used and fit."""
        with self.budget.lock:
            entry = self._data.get(key)
            if entry is None:
                return
            size = int(self.sizeof(entry.value))
            self._nbytes += size - entry.size
            entry.size, entry.tick = size, self.budget._tick()
            self._data.move_to_end(key)
            self._fit(key)

    def pop(self, key: Hashable, default: Any = None) -> Any:
        """Remove ``key`` (no ``on_evict`` call); returns its value or ``default``."""
        with self.budget.lock:
            entry = self._data.pop(key, None)
            if entry is None:
                return default
            self._nbytes -= entry.size
            return entry.value

    def _fit(self, keep: Hashable) -> None:
        while self.max_entries is not None and len(self._data) > self.max_entries:
            self._drop(next(iter(self._data)))
        self.budget._fit((self, keep))

    def _oldest(self, keep: tuple[ByteLRU, Hashable]) -> tuple[int, Hashable] | None:
        """``(tick, key)`` of the least recently used entry other than ``keep``."""
        for key, entry in self._data.items():
            if (self, key) != keep:
                return entry.tick, key
        return None

    def _drop(self, key: Hashable) -> int:
        """Evict ``key``; returns its size."""
        entry = self._data.pop(key)
        self._nbytes -= entry.size
        if self.on_evict is not None:
            self.on_evict(key, entry.value)
        return entry.size

    def keys(self) -> list[Hashable]:
        """Keys from the least to the most recently used."""
        with self.budget.lock:
            return list(self._data)

    def __contains__(self, key: Hashable) -> bool:
        with self.budget.lock:
            return key in self._data

    def __len__(self) -> int:
        with self.budget.lock:
            return len(self._data)

    def clear(self) -> None:
        with self.budget.lock:
            self._data.clear()
            self._nbytes = 0


class EmbeddingCache:
    """Least-recently-used mapping ``key -> embedding`` of at most ``maxsize`` entries and,
    with ``budget`` (bytes or a shared :class:`MemoryBudget`), at most that many bytes.

    A LiteMedSAM embedding takes 4 MiB (256 x 64 x 64 float32), so the default 32 entries
    use about 128 MiB.
    """

    def __init__(self, maxsize: int = 32, budget: MemoryBudget | int | None = None) -> None:
        self._lru = ByteLRU(maxsize, budget)
        self.maxsize = self._lru.max_entries
        self._hits = 0
        self._misses = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value for ``key``; on a miss, ``compute()`` it and store it."""
        missing = object()
        value = self._lru.get(key, missing)
        if value is not missing:
            self._hits += 1
            return value
        self._misses += 1
        value = compute()
        self._lru.put(key, value)
        return value

    def __contains__(self, key: Hashable) -> bool:
        return key in self._lru

    def __len__(self) -> int:
        return len(self._lru)

    def clear(self) -> None:
        self._lru.clear()

    def info(self) -> CacheInfo:
        return CacheInfo(self._hits, self._misses, len(self._lru), self.maxsize,
                         self._lru.nbytes, self._lru.budget.max_bytes)  # fmt: skip
