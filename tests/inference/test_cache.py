"""``medseg.inference.cache``: LRU caches bounded by entries and bytes, one shared budget."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from medseg.inference.cache import ByteLRU, CacheInfo, EmbeddingCache, MemoryBudget, nbytes
from medseg.io.image import Image


def _arr(n: int) -> np.ndarray:
    """``n`` bytes (uint8)."""
    return np.zeros(n, np.uint8)


def test_nbytes_of_arrays_images_embeddings_and_containers() -> None:
    class Embedding:
        nbytes = 4096

    assert nbytes(_arr(100)) == 100
    assert nbytes(np.zeros((2, 3), np.float32)) == 24
    assert nbytes(Image(np.zeros((4, 5), np.int16))) == 40
    assert nbytes(Embedding()) == 4096
    d = {"a": _arr(10), "b": [_arr(20), _arr(30)]}
    expected = sys.getsizeof(d) + nbytes("a") + 10 + nbytes("b") + sys.getsizeof(d["b"]) + 50
    assert nbytes(d) == expected


def test_byte_bound_drops_least_recently_used_first() -> None:
    evicted: list[str] = []
    cache = ByteLRU(budget=250, on_evict=lambda k, v: evicted.append(k))
    cache.put("a", _arr(100))
    cache.put("b", _arr(100))
    assert cache.nbytes == 200 and cache.keys() == ["a", "b"]
    cache.get("a")  # a is now the most recently used
    cache.put("c", _arr(100))  # 300 > 250: b goes
    assert evicted == ["b"] and cache.keys() == ["a", "c"] and cache.nbytes == 200
    cache.put("d", _arr(200))  # 400: a, then c go (d alone is 200)
    assert evicted == ["b", "a", "c"] and cache.keys() == ["d"] and cache.nbytes == 200


def test_an_entry_larger_than_the_budget_is_kept_alone() -> None:
    cache = ByteLRU(budget=100)
    cache.put("small", _arr(60))
    cache.put("huge", _arr(500))
    assert cache.keys() == ["huge"] and cache.nbytes == 500
    cache.put("next", _arr(10))  # huge is no longer the one in use
    assert cache.keys() == ["next"] and cache.nbytes == 10


def test_entry_count_bound_and_replacing_a_key() -> None:
    cache = ByteLRU(max_entries=2, budget=1000)
    cache.put("a", _arr(10))
    cache.put("b", _arr(20))
    cache.put("a", _arr(300))  # replaced: counted once, with its new size
    assert cache.keys() == ["b", "a"] and cache.nbytes == 320
    cache.put("c", _arr(1))
    assert cache.keys() == ["a", "c"] and cache.nbytes == 301
    assert cache.pop("a").nbytes == 300 and cache.pop("a", "gone") == "gone"
    assert cache.nbytes == 1 and len(cache) == 1 and "c" in cache
    cache.clear()
    assert cache.nbytes == 0 and len(cache) == 0


def test_touch_measures_a_grown_value_again() -> None:
    class Growing:
        def __init__(self) -> None:
            self.nbytes = 10

    cache = ByteLRU(budget=100)
    grows = Growing()
    cache.put("other", _arr(50))
    cache.put("g", grows)
    grows.nbytes = 80
    assert cache.nbytes == 60  # measured when stored
    cache.touch("g")  # 130 > 100: other goes, g stays
    assert cache.keys() == ["g"] and cache.nbytes == 80
    cache.touch("missing")  # no-op


def test_a_shared_budget_evicts_the_oldest_entry_of_any_cache() -> None:
    budget = MemoryBudget(300)
    images, embeddings = ByteLRU(budget=budget), ByteLRU(max_entries=10, budget=budget)
    images.put("img1", _arr(100))  # tick 0
    embeddings.put("e1", _arr(100))  # tick 1
    images.put("img2", _arr(100))  # tick 2
    assert budget.nbytes == 300
    embeddings.put("e2", _arr(50))  # 350: the oldest of both caches (img1) goes
    assert images.keys() == ["img2"] and embeddings.keys() == ["e1", "e2"]
    assert budget.nbytes == 250
    images.get("img2")  # used again: now e1 is the oldest
    embeddings.put("e3", _arr(100))  # 350: e1 goes
    assert images.keys() == ["img2"] and embeddings.keys() == ["e2", "e3"]
    assert (images.nbytes, embeddings.nbytes, budget.nbytes) == (100, 150, 250)


def test_a_dropped_cache_leaves_the_budget() -> None:
    budget = MemoryBudget(1000)
    kept = ByteLRU(budget=budget)
    kept.put("k", _arr(100))
    dropped = ByteLRU(budget=budget)
    dropped.put("d", _arr(400))
    assert budget.nbytes == 500
    del dropped
    assert budget.nbytes == 100


def test_unbounded_budget_and_bad_bounds() -> None:
    cache = ByteLRU()
    for i in range(5):
        cache.put(i, _arr(10**6))
    assert len(cache) == 5 and cache.nbytes == 5 * 10**6
    with pytest.raises(ValueError, match="memory budget must be >= 1 byte"):
        MemoryBudget(0)
    with pytest.raises(ValueError, match="cache size must be >= 1"):
        ByteLRU(max_entries=0)


def test_embedding_cache_counts_hits_misses_and_bytes() -> None:
    budget = MemoryBudget(250)
    cache = EmbeddingCache(maxsize=3, budget=budget)
    calls: list[str] = []

    def compute(key: str, n: int) -> np.ndarray:
        calls.append(key)
        return _arr(n)

    cache.get_or_compute("a", lambda: compute("a", 100))
    cache.get_or_compute("a", lambda: compute("a", 100))  # hit
    cache.get_or_compute("b", lambda: compute("b", 100))
    cache.get_or_compute("c", lambda: compute("c", 100))  # 300 > 250: a goes
    assert calls == ["a", "b", "c"] and "a" not in cache and len(cache) == 2
    assert cache.info() == CacheInfo(hits=1, misses=3, size=2, maxsize=3, nbytes=200,
                                     max_bytes=250)  # fmt: skip
    cache.get_or_compute("a", lambda: compute("a", 10))  # recomputed
    assert calls == ["a", "b", "c", "a"] and cache.info().nbytes == 210
    assert EmbeddingCache(4).info() == CacheInfo(0, 0, 0, 4, 0, None)
