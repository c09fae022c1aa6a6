"""One byte budget for the server's caches (``medseg serve --cache-mb``): decoded images,
predictors and their slice embeddings, remembered logits, all on one
:class:`medseg.inference.cache.MemoryBudget` (least recently used entry of any goes first)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medseg.errors import InputError
from medseg.inference.cache import MemoryBudget
from medseg.io.image import Image
from medseg.io.writers import save
from medseg.models.base import Decoded, PromptableModel
from medseg.prompts.types import PromptSet
from medseg.server.config import MiB, ServerConfig
from medseg.server.datastore import Datastore
from medseg.server.sessions import PredictorPool, SessionManager


class _Copy(PromptableModel):
    """Embeds a ``(H, W)`` slice as its float32 copy (``H * W * 4`` bytes); a box's mask."""

    name = "copy"
    prompt_kinds = frozenset({"box"})

    def encode(self, image: np.ndarray) -> np.ndarray:
        return np.array(image, np.float32)

    def decode(self, embedding: Any, prompts: PromptSet, *, multimask: bool = False) -> Decoded:
        x0, y0, x1, y1 = (int(v) for v in prompts.boxes[0])
        logits = np.full((1, 1, *embedding.shape), -8.0, np.float32)
        logits[0, 0, y0:y1, x0:x1] = 8.0
        return Decoded(logits, np.ones((1, 1), np.float32))


def _volume(seed: int) -> Image:
    """``(4, 8, 8)`` float32: 1024 bytes."""
    return Image(np.random.default_rng(seed).random((4, 8, 8), dtype=np.float32))


def test_datastore_drops_the_least_recently_used_image_beyond_the_budget(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        save(np.full((3, 10, 10), ord(name), np.int16), tmp_path / f"{name}.nii.gz")
    probe = Datastore(tmp_path)
    ids = {Path(e.rel).name.split(".")[0]: e.id for e in probe.scan()}
    size = probe.load(ids["a"]).array.nbytes  # 600 bytes (int16)
    budget = MemoryBudget(2 * size + size // 2)  # room for two images
    ds = Datastore(tmp_path, max_loaded=10, budget=budget)
    ds.scan()
    a, b = ds.load(ids["a"]), ds.load(ids["b"])
    assert budget.nbytes == 2 * size and ds.load(ids["a"]) is a  # cached; now a is newest
    ds.load(ids["c"])  # b is the least recently used: dropped
    assert budget.nbytes == 2 * size
    assert ds.load(ids["a"]) is a and ds.load(ids["b"]) is not b  # b decoded again ...
    assert budget.nbytes == 2 * size  # ... and c dropped for it


def test_pool_counts_predictor_arrays_and_slice_embeddings() -> None:
    budget = MemoryBudget(4500)
    pool = PredictorPool(_Copy(), max_entries=8, slice_cache=8, budget=budget)
    pa = pool.get("a" * 16, "axial", lambda: _volume(0))
    assert pa.predictor.nbytes == 2048  # the (4, 8, 8) float32 image + its normalised copy
    assert budget.nbytes == 2048  # a volume is embedded per slice, on demand
    for z in range(4):
        pa.predictor.embedding(z)
    assert budget.nbytes == 2048 + 4 * 256 and pa.predictor.cache_info().nbytes == 1024
    pb = pool.get("b" * 16, "axial", lambda: _volume(1))  # 5120 > 4500: a's predictor goes
    assert ("a" * 16, "axial") not in pool and ("b" * 16, "axial") in pool
    assert budget.nbytes == 2048 + 1024  # a's embeddings live as long as its predictor
    del pa
    assert budget.nbytes == 2048
    pb.predictor.embedding(0)
    assert budget.nbytes == 2048 + 256 and len(pool) == 1


def test_embeddings_of_the_predictor_in_use_push_out_older_entries() -> None:
    budget = MemoryBudget(2048 + 3 * 256)
    pool = PredictorPool(_Copy(), max_entries=8, slice_cache=8, budget=budget)
    p = pool.get("a" * 16, "axial", lambda: _volume(0)).predictor
    for z in range(3):
        p.embedding(z)
    assert len(pool) == 1 and budget.nbytes == 2048 + 3 * 256
    p.embedding(3)  # 3072 > 2816: the oldest entry is the pooled predictor itself
    assert len(pool) == 0 and p.cache_info().size == 4 and budget.nbytes == 4 * 256


def test_session_logits_count_against_the_budget() -> None:
    budget = MemoryBudget(1000)
    sessions = SessionManager(4, budget)
    one, two = sessions.create("a" * 16), sessions.create("b" * 16)
    one.remember(("l", 0), np.zeros(100, np.float32))  # 400 bytes
    two.remember(("l", 0), np.zeros(100, np.float32))
    assert budget.nbytes == 800
    one.remember(("l", 1), np.zeros(100, np.float32))  # 1200: the oldest (one's first) goes
    assert one.recall(("l", 0)) is None and two.recall(("l", 0)) is not None
    assert one.recall(("l", 1)) is not None and budget.nbytes == 800
    sessions.close(two.id)
    del two
    assert budget.nbytes == 400


def test_the_app_gives_every_cache_one_budget(make_api: Any) -> None:
    api = make_api(cache_bytes=64 * MiB)
    state = api.client.app.state.medseg
    assert state.budget.max_bytes == 64 * MiB
    assert state.pool.budget is state.budget and state.sessions.budget is state.budget
    ct = api.image_id("sample_ct")
    assert api.get(f"/api/images/{ct}").status_code == 200
    decoded = state.datastore.load(ct).array.nbytes
    assert state.budget.nbytes > decoded  # the decoded image and its description


def test_cache_mb_option_and_its_check(tmp_path: Path) -> None:
    from medseg.cli.commands import serve

    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    assert serve._config(parser.parse_args([str(tmp_path)])).cache_bytes == 2048 * MiB
    args = parser.parse_args([str(tmp_path), "--cache-mb", "64"])
    assert serve._config(args).cache_bytes == 64 * MiB
    with pytest.raises(InputError, match="cache_bytes must be >= 1, got 0"):
        ServerConfig(data_dir=tmp_path, cache_bytes=0)
