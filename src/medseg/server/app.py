"""``create_app(config)``: the FastAPI application of ``medseg serve``.

Everything the app needs lives in one :class:`~medseg.server.state.ServerState` on
``app.state.medseg``, so several apps (tests, different folders) can run in one process.
The model is loaded at start-up (FastAPI lifespan) unless one is passed in; the optional
automatic model (``config.auto_model``) is loaded by ``create_app``, so a bad model folder
fails before the server starts.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from medseg._version import __version__
from medseg.errors import InputError, MedsegError, ModelError, PromptError
from medseg.inference.cache import MemoryBudget
from medseg.io.dicomweb import DicomwebUnavailable
from medseg.server.auth import (
    BodySizeLimit,
    SecurityHeaders,
    cookie_name,
    new_token,
    token_dependency,
    token_matches,
)
from medseg.server.config import MiB, ServerConfig
from medseg.server.datastore import Datastore, NotFound
from medseg.server.dicomweb_source import attach_dicomweb
from medseg.server.labelstore import LabelStore
from medseg.server.routes import dicomweb, images, labels, monailabel, sessions, system
from medseg.server.schemas import request_validation_handler
from medseg.server.sessions import SessionManager, warm_up
from medseg.server.state import ServerState
from medseg.server.uploads import UnsupportedType

__all__ = ["create_app", "STATIC_DIR", "load_model", "load_auto_model", "public_message"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
_DESCRIPTION = """Interactive promptable segmentation of the images in a folder.

Every `/api` request needs `Authorization: Bearer <token>` (the token `medseg serve`
prints) unless the server runs with `--no-auth`. Images are addressed by ids from
`GET /api/images`; masks come back run-length encoded (`rle`) or as PNG.
"""
# JSON label uploads (RLE) may be larger than an image file; allow some headroom.
_BODY_OVERHEAD = 16 * MiB


def _model_and_auto_dir(config: ServerConfig) -> tuple[str, Any]:
    """(promptable model name, automatic model folder or None): a ``medseg auto`` folder
    given as ``model`` is the automatic model, with the default promptable model."""
    from medseg.automatic.segmenter import model_folder
    from medseg.models.registry import is_model

    folder = None if is_model(config.model) else model_folder(config.model)
    if folder is None:
        return config.model, config.auto_model
    return "default", config.auto_model or folder


def load_model(config: ServerConfig) -> Any:
    """Create the promptable model (``config.model`` with ``config.model_options``)."""
    from medseg.models.registry import create_model

    return create_model(_model_and_auto_dir(config)[0], **dict(config.model_options))


def load_auto_model(config: ServerConfig) -> Any:
    """The :class:`~medseg.automatic.segmenter.AutoSegmenter` of ``config.auto_model`` (or
    of a model folder given as ``config.model``) with ``config.auto_options``; None without."""
    from medseg.automatic.segmenter import load_auto_model as load

    folder = _model_and_auto_dir(config)[1]
    return None if folder is None else load(folder, **dict(config.auto_options))


def public_message(message: str, roots: list[str]) -> str:
    """``message`` with every path under one of ``roots`` made relative to that root.

    ``/srv/store/bad/x.nii.gz: cannot read`` -> ``bad/x.nii.gz: cannot read``; the root
    itself becomes ``.``. Longer roots are replaced first; ``/srv/store2`` is not inside
    ``/srv/store``.
    """
    for root in sorted({r.rstrip("/") for r in roots if len(r.rstrip("/")) > 1}, key=len,
                       reverse=True):  # fmt: skip
        pattern = re.compile(re.escape(root) + r"(?:/|(?![\w.-]))")
        message = pattern.sub(lambda m: "" if m.group().endswith("/") else ".", message)
    return message


def _roots(request: Request) -> list[str]:
    """The datastore folder as configured and as resolved (error messages hide both)."""
    state = getattr(request.app.state, "medseg", None)
    if state is None:
        return []
    return [str(state.datastore.root), os.path.abspath(state.config.data_dir)]


def _error(status: int) -> Any:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        detail = public_message(str(exc), _roots(request))  # no absolute server paths
        return JSONResponse({"detail": detail}, status_code=status)

    return handler


def _add_error_handlers(app: FastAPI) -> None:
    for exc_type, status in (
        (NotFound, 404),
        (UnsupportedType, 415),
        (PromptError, 422),
        (InputError, 400),
        (ModelError, 503),
        (DicomwebUnavailable, 503),  # the PACS of --dicomweb is down
        (MedsegError, 400),
    ):
        app.add_exception_handler(exc_type, _error(status))
    # 422 without the rejected input (NaN or megabytes of a body): never a 500.
    app.add_exception_handler(RequestValidationError, request_validation_handler)


def _add_middleware(app: FastAPI, config: ServerConfig) -> None:
    # Added innermost first: the last one added sees the request first.
    app.add_middleware(SecurityHeaders)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],  # PUT: MONAI Label saves
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(BodySizeLimit, max_bytes=config.max_upload_bytes + _BODY_OVERHEAD)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(config.host_names))


def _add_index(app: FastAPI, state: ServerState) -> None:
    cookie = cookie_name(state.config.port)

    @app.get("/", include_in_schema=False)
    def index(token: Annotated[str | None, Query(max_length=256)] = None) -> Response:
        if token is not None:
            # Move the token from the URL into a cookie and drop it from the address bar.
            response = RedirectResponse("/", status_code=303)
            if state.token is not None and token_matches(token, state.token):
                response.set_cookie(cookie, token, httponly=True, samesite="strict", path="/")
            return response
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")


def create_app(config: ServerConfig, *, model: Any = None, auto_model: Any = None) -> FastAPI:
    """Build the app for ``config``.

    Args:
        config: the server settings; ``config.token`` None with auth on generates a token
            (read it from ``app.state.medseg.token``).
        model: a model instance to use instead of loading ``config.model`` at start-up
            (lets tests and benchmarks share one model between apps).
        auto_model: an :class:`~medseg.automatic.segmenter.AutoSegmenter` to use instead of
            loading ``config.auto_model``.
    """
    token = (config.token or new_token()) if config.auth else None
    budget = MemoryBudget(config.cache_bytes)  # one byte budget for every cache
    datastore = Datastore(config.data_dir, config.max_images_loaded, budget)
    attach_dicomweb(datastore, config)  # --dicomweb: the server's series beside the folder's
    state = ServerState(
        config=config,
        token=token,
        datastore=datastore,
        labels=LabelStore(datastore),
        sessions=SessionManager(config.max_sessions, budget),
        budget=budget,
    )
    if auto_model is None:
        auto_model = load_auto_model(config)
    state.auto = auto_model
    if model is not None:
        state.attach_model(model)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state.model is None:
            loaded = await run_in_threadpool(load_model, config)
            if config.warmup:
                state.warmup_ms = await run_in_threadpool(warm_up, loaded)
                log.info("model %s ready (warm-up %.0f ms)", loaded.name, state.warmup_ms)
            state.attach_model(loaded)
        yield

    # FastAPIOffline = FastAPI whose /docs and /redoc load Swagger UI / ReDoc from files in
    # the installed package instead of a CDN (annotation laptops are often offline).
    app = FastAPIOffline(
        static_url="/docs-static",
        title="medseg annotation server",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.medseg = state
    guard = [Depends(token_dependency(token, config.port, config.cors_origins))]
    for module in (system, images, sessions, labels, monailabel, dicomweb):
        app.include_router(module.router, dependencies=guard)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _add_index(app, state)
    _add_error_handlers(app)
    _add_middleware(app, config)
    return app
