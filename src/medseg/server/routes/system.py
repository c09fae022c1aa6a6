"""``/api/info``: server version, model and its tool support, limits."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from medseg._version import __version__
from medseg.server.schemas import ModelInfo, ServerInfo
from medseg.server.state import ServerState, get_state
from medseg.server.uploads import UPLOAD_TYPES

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["system"])

State = Annotated[ServerState, Depends(get_state)]


@router.get("/info", response_model=ServerInfo, summary="Server, model and limits")
def info(state: State) -> dict:
    return {
        "version": __version__,
        "auth": state.token is not None,
        "datastore": state.datastore.root.name,
        "model": state.model_info(),
        "auto_model": state.auto_info(),
        "max_upload_bytes": state.config.max_upload_bytes,
        "upload_types": sorted(UPLOAD_TYPES),
    }


@router.get("/model", response_model=ModelInfo, summary="The model and which tools it supports")
def model(state: State) -> dict:
    return state.model_info()
