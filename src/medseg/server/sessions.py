"""Annotation sessions and the bounded pool of predictors (embedding caches).

- One model instance is shared by every predictor. Its forward passes do not change it
  (PyTorch inference mode, ONNX Runtime sessions are thread-safe), and the lazy choice of
  the encoder backend happens once at start-up (``warm_up``), before requests arrive.
- A :class:`medseg.Predictor` is *not* thread-safe (it holds the current image and an
  ``OrderedDict`` cache), so each pooled predictor has its own lock, held for every call.
- The pool keeps one predictor per ``(image, view)``: sessions on the same image share its
  embeddings; the least recently used predictors are dropped beyond ``max_predictors``, and
  each predictor keeps at most ``slice_cache`` slice embeddings. The view ``"auto"`` is the
  predictor given the automatic model (``Predictor(model, auto=...)``) on the image itself.
- A session is one browser tab (or API client) on one image. It remembers the last mask
  logits per ``(label, view, slice)`` so that a correction can refine the previous mask
  (``mask_input="previous"``) without sending it; sessions never share these.
- Memory: the pool's predictors (their image and normalised copy), their slice embeddings
  and the sessions' remembered logits are :class:`~medseg.inference.cache.ByteLRU` caches
  on one :class:`~medseg.inference.cache.MemoryBudget` (``medseg serve --cache-mb``), shared
  with the datastore's decoded images: the least recently used entry of any of them goes
  first.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medseg.inference.cache import ByteLRU, MemoryBudget
from medseg.io.image import Image
from medseg.server.datastore import NotFound

__all__ = ["PooledPredictor", "PredictorPool", "Session", "SessionManager", "warm_up"]

log = logging.getLogger(__name__)

# Previous-mask logits remembered per session (one 2D float32 array each).
_PREVIOUS_PER_SESSION = 16


@dataclass(eq=False)
class PooledPredictor:
    """A predictor with its lock; ``embed_ms`` is the time ``set_image`` took."""

    predictor: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    embed_ms: float = 0.0


class PredictorPool:
    """LRU of predictors keyed by ``(image_id, view)``, all sharing one model; at most
    ``max_entries`` predictors and, with ``budget`` (bytes or a shared
    :class:`MemoryBudget`), at most that many bytes: a predictor's image and normalised
    copy (``Predictor.nbytes``) count here, its slice embeddings in its own cache on the
    same budget."""

    def __init__(
        self,
        model: Any,
        max_entries: int,
        slice_cache: int,
        budget: MemoryBudget | int | None = None,
    ) -> None:
        self.model = model
        self.max_entries = int(max_entries)
        self.slice_cache = int(slice_cache)
        self.budget = budget if isinstance(budget, MemoryBudget) else MemoryBudget(budget)
        self._lock = threading.Lock()
        self._entries = ByteLRU(
            self.max_entries, self.budget, sizeof=lambda e: e.predictor.nbytes,
            on_evict=lambda key, _: log.debug("dropped the predictor of %s", key),
        )  # fmt: skip
        self._creating: dict[tuple[str, str], threading.Lock] = {}

    def get(
        self, image_id: str, view: str, make_image: Callable[[], Image], auto: Any = None
    ) -> PooledPredictor:
        """The predictor of ``(image_id, view)``, created with ``make_image()`` (and the
        automatic model ``auto``, if given) when needed."""
        key = (image_id, view)
        entry = self._entries.get(key)
        if entry is not None:
            return entry
        with self._lock:
            creating = self._creating.setdefault(key, threading.Lock())
        with creating:  # one thread builds it; the others wait and reuse it
            entry = self._entries.get(key)
            if entry is None:
                entry = self._create(make_image(), auto)
                self._entries.put(key, entry)
            with self._lock:
                self._creating.pop(key, None)
        return entry

    def _create(self, image: Image, auto: Any) -> PooledPredictor:
        from medseg.inference.predictor import Predictor

        predictor = Predictor(self.model, auto=auto, cache_size=self.slice_cache,
                              cache_bytes=self.budget, progress=False)  # fmt: skip
        start = time.perf_counter()
        predictor.set_image(image)
        return PooledPredictor(predictor, embed_ms=(time.perf_counter() - start) * 1000)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(eq=False)
class Session:
    """One client's annotation session on one image; ``budget``: the byte budget of the
    remembered logits (shared with the server's caches; None: count bound only)."""

    id: str
    image_id: str
    created: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)
    budget: MemoryBudget | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._previous = ByteLRU(_PREVIOUS_PER_SESSION, self.budget)

    def remember(self, key: Hashable, logits: np.ndarray) -> None:
        """Keep the latest logits for ``key`` (bounded; oldest dropped)."""
        self._previous.put(key, logits)

    def recall(self, key: Hashable) -> np.ndarray | None:
        """The logits remembered for ``key``, or None (never given, or dropped)."""
        return self._previous.get(key)


class SessionManager:
    """Open sessions, at most ``max_sessions`` (least recently used are closed); their
    remembered logits count against ``budget``."""

    def __init__(self, max_sessions: int, budget: MemoryBudget | None = None) -> None:
        self.max_sessions = int(max_sessions)
        self.budget = budget
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def create(self, image_id: str) -> Session:
        session = Session(id=secrets.token_urlsafe(16), image_id=image_id, budget=self.budget)
        with self._lock:
            self._sessions[session.id] = session
            while len(self._sessions) > self.max_sessions:
                old, _ = self._sessions.popitem(last=False)
                log.info("closed the least recently used session %s", old[:6])
        return session

    def get(self, session_id: str) -> Session:
        """The session (marked as used); raises ``NotFound`` for unknown or closed ones."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                raise NotFound("no such session (closed or expired); start a new one")
            self._sessions.move_to_end(session_id)
        session.last_used = time.time()
        return session

    def close(self, session_id: str) -> None:
        with self._lock:
            if self._sessions.pop(session_id, None) is None:
                raise NotFound("no such session (closed or expired)")

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)


def warm_up(model: Any) -> float:
    """Run the encoder and decoder once (picks the encoder backend); returns milliseconds."""
    from medseg.prompts.types import PromptSet

    start = time.perf_counter()
    image = np.zeros((64, 64), np.float32)
    image[16:48, 16:48] = 1.0
    embedding = model.encode(image)
    if "box" in model.prompt_kinds:
        prompts = PromptSet(boxes=np.array([[16.0, 16.0, 48.0, 48.0]]))
    else:
        prompts = PromptSet(points=np.array([[[32.0, 32.0]]]), point_labels=np.array([[1]]))
    model.decode(embedding, prompts)
    return (time.perf_counter() - start) * 1000
