"""Annotation sessions and the bounded pool of predictors (embedding caches).

- One model instance is shared by every predictor. Its forward passes do not change it
  (PyTorch inference mode, ONNX Runtime sessions are thread-safe), and the lazy choice of
  the encoder backend happens once at start-up (``warm_up``), before requests arrive.
- A :class:`medseg.Predictor` is *not* thread-safe (it holds the current image and an
  ``OrderedDict`` cache), so each pooled predictor has its own lock, held for every call.
- The pool keeps one predictor per ``(image, view)``: sessions on the same image share its
  embeddings; the least recently used predictors are dropped beyond ``max_predictors``, and
  each predictor keeps at most ``slice_cache`` slice embeddings.
- A session is one browser tab (or API client) on one image. It remembers the last mask
  logits per ``(label, view, slice)`` so that a correction can refine the previous mask
  (``mask_input="previous"``) without sending it; sessions never share these.
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
    """LRU of predictors keyed by ``(image_id, view)``, all sharing one model."""

    def __init__(self, model: Any, max_entries: int, slice_cache: int) -> None:
        self.model = model
        self.max_entries = int(max_entries)
        self.slice_cache = int(slice_cache)
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], PooledPredictor] = OrderedDict()
        self._creating: dict[tuple[str, str], threading.Lock] = {}

    def get(self, image_id: str, view: str, make_image: Callable[[], Image]) -> PooledPredictor:
        """The predictor of ``(image_id, view)``, created with ``make_image()`` if needed."""
        key = (image_id, view)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            creating = self._creating.setdefault(key, threading.Lock())
        with creating:  # one thread builds it; the others wait and reuse it
            with self._lock:
                if key in self._entries:
                    return self._entries[key]
            entry = self._create(make_image())
            with self._lock:
                self._entries[key] = entry
                self._creating.pop(key, None)
                while len(self._entries) > self.max_entries:
                    old, _ = self._entries.popitem(last=False)
                    log.debug("dropped the embeddings of %s", old)
        return entry

    def _create(self, image: Image) -> PooledPredictor:
        from medseg.inference.predictor import Predictor

        predictor = Predictor(self.model, cache_size=self.slice_cache, progress=False)
        start = time.perf_counter()
        predictor.set_image(image)
        return PooledPredictor(predictor, embed_ms=(time.perf_counter() - start) * 1000)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


@dataclass(eq=False)
class Session:
    """One client's annotation session on one image."""

    id: str
    image_id: str
    created: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)
    _previous: OrderedDict[Hashable, np.ndarray] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def remember(self, key: Hashable, logits: np.ndarray) -> None:
        """Keep the latest logits for ``key`` (bounded; oldest dropped)."""
        with self._lock:
            self._previous[key] = logits
            self._previous.move_to_end(key)
            while len(self._previous) > _PREVIOUS_PER_SESSION:
                self._previous.popitem(last=False)

    def recall(self, key: Hashable) -> np.ndarray | None:
        """The logits remembered for ``key``, or None."""
        with self._lock:
            return self._previous.get(key)


class SessionManager:
    """Open sessions, at most ``max_sessions`` (least recently used are closed)."""

    def __init__(self, max_sessions: int) -> None:
        self.max_sessions = int(max_sessions)
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def create(self, image_id: str) -> Session:
        session = Session(id=secrets.token_urlsafe(16), image_id=image_id)
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
