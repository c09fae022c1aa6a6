"""``/api/sessions``: start a session on an image, prepare slices, predict masks, run the
automatic model (``auto``, when the server has one)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Path, status
from fastapi.responses import Response

from medseg.server.encoding import encode_mask
from medseg.server.schemas import (
    AutoRequest,
    AutoResponse,
    PredictRequest,
    PredictResponse,
    PrepareRequest,
    PrepareResponse,
    SessionInfo,
    SessionRequest,
)
from medseg.server.segment import check_request, previous_mask, run_predict
from medseg.server.sessions import Session
from medseg.server.state import ServerState, get_state
from medseg.server.views import view_shape

__all__ = ["router"]

router = APIRouter(prefix="/api/sessions", tags=["sessions"])

State = Annotated[ServerState, Depends(get_state)]
SessionId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{16,64}$")]


def _embed(state: ServerState, image_id: str, view: str, index: int | None) -> float:
    """Embed the image (2D) or one slice (3D) of ``view``; returns the time in ms."""
    pooled = state.predictor(image_id, view)
    start = time.perf_counter()
    with pooled.lock:
        if pooled.predictor.image.ndim == 3:
            depth = pooled.predictor.image.shape[0]
            z = depth // 2 if index is None else index
            pooled.predictor.embedding(min(z, depth - 1))
    return pooled.embed_ms + (time.perf_counter() - start) * 1000


def _session_info(state: ServerState, session: Session, embed_ms: float, t0: float) -> dict:
    entry = state.datastore.get(session.image_id)
    return {
        "session_id": session.id,
        "image": state.detail(entry),
        "model": state.model_info(),
        "embed_ms": embed_ms,
        "latency_ms": (time.perf_counter() - t0) * 1000,
    }


@router.post(
    "",
    response_model=SessionInfo,
    status_code=status.HTTP_201_CREATED,
    summary="Start a session on an image (computes and caches its embedding)",
)
def start_session(body: SessionRequest, state: State) -> dict:
    t0 = time.perf_counter()
    entry = state.datastore.get(body.image_id)
    embed_ms = _embed(state, entry.id, body.view, body.slice_index)
    session = state.sessions.create(entry.id)
    return _session_info(state, session, embed_ms, t0)


@router.get("/{session_id}", response_model=SessionInfo, summary="Describe a session")
def get_session(session_id: SessionId, state: State) -> dict:
    t0 = time.perf_counter()
    return _session_info(state, state.sessions.get(session_id), 0.0, t0)


@router.delete(
    "/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Close a session",
)
def close_session(session_id: SessionId, state: State) -> Response:
    state.sessions.close(session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{session_id}/prepare",
    response_model=PrepareResponse,
    summary="Embed a slice ahead of the first click (3D; a no-op for cached slices)",
)
def prepare(session_id: SessionId, body: PrepareRequest, state: State) -> dict:
    t0 = time.perf_counter()
    session = state.sessions.get(session_id)
    image = state.datastore.load(session.image_id)
    depth = view_shape(image, body.view)[0]
    index = min(body.slice_index, depth - 1)
    _embed(state, session.image_id, body.view, index)
    return {"view": body.view, "slice_index": index,
            "latency_ms": (time.perf_counter() - t0) * 1000}  # fmt: skip


@router.post(
    "/{session_id}/predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    summary="Segment with prompts; returns the mask (RLE or PNG) and the server latency",
)
def predict(session_id: SessionId, body: PredictRequest, state: State) -> dict[str, Any]:
    t0 = time.perf_counter()
    session = state.sessions.get(session_id)
    image = state.datastore.load(session.image_id)
    depth = view_shape(image, body.view)[0]
    index = check_request(body, image.ndim, depth)
    pooled = state.predictor(session.image_id, body.view)
    key = (body.label, body.view, index)
    previous = session.recall(key) if body.mask_input == "previous" else None
    if body.mask_input == "mask":
        previous = previous_mask(body, view_shape(image, body.view)[1:])
    outcome = run_predict(pooled, body, index, previous)
    session.remember(key, outcome.logits)
    out: dict[str, Any] = {
        "view": body.view,
        "slice_index": index,
        "label": body.label,
        "mask": encode_mask(outcome.mask, body.encoding),
        "score": float(np.nan_to_num(outcome.score)),
        "area": int(outcome.mask.sum()),
        "model_ms": outcome.model_ms,
    }
    if outcome.found is not None:
        out["found"], out["target"] = outcome.found, outcome.target
    if outcome.block is not None:
        lo, hi, block = outcome.block
        out["propagated"] = {"start": lo, "stop": hi, "mask": encode_mask(block, body.encoding)}
    out["latency_ms"] = (time.perf_counter() - t0) * 1000
    return out


@router.post(
    "/{session_id}/auto",
    response_model=AutoResponse,
    response_model_exclude_none=True,
    summary="Run the automatic model on the session's image: one mask per class",
)
def auto_segment(session_id: SessionId, state: State, body: AutoRequest | None = None) -> dict:
    """Per-class masks of the whole image in array order (``(H, W)`` / ``(Z, Y, X)``, as
    saved labels), to use as first masks; 404 when the server has no automatic model."""
    t0 = time.perf_counter()
    session = state.sessions.get(session_id)
    labels, model_ms = state.auto_segment(session.image_id)
    encoding = (body or AutoRequest()).encoding
    classes = []
    for value, name in state.auto.label_names.items():
        mask = labels.array == value
        classes.append({"value": value, "name": name, "voxels": int(mask.sum()),
                        "mask": encode_mask(mask, encoding)})  # fmt: skip
    return {
        "model": state.auto.name,
        "shape": list(labels.shape),
        "classes": classes,
        "model_ms": model_ms,
        "latency_ms": (time.perf_counter() - t0) * 1000,
    }
