"""The MONAI Label-compatible API: what 3D Slicer's MONAI Label module, OHIF's MONAI Label
panel and ``monailabel.client.MONAILabelClient`` call, on the server's own datastore,
sessions and models (see docs/monailabel.md).

- ``GET /info/``: the app (name, version, labels) and its models (:mod:`.monailabel.infer`);
- ``POST /infer/{model}``: clicks or text in ``params`` (:mod:`.monailabel.params`) -> label
  map;
- ``/datastore/...`` and ``/session/...``: :mod:`medseg.server.monailabel.store_routes`;
- ``POST /activelearning/{strategy}``: the next image without a label (``first`` in listing
  order or ``random``); ``{}`` when every image has one (what MONAI Label answers);
- ``/train/`` answers 501 (not offered); ``/auth/`` says that MONAI Label's login is not
  used (medseg checks its own access token).

Every route has the same token check as ``/api`` (``Authorization: Bearer <token>``).
"""

from __future__ import annotations

import random
import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, File, Form, HTTPException, Query, UploadFile
from fastapi.responses import JSONResponse, Response

from medseg._version import __version__
from medseg.errors import InputError
from medseg.server.datastore import ImageEntry, NotFound
from medseg.server.monailabel import store_routes
from medseg.server.monailabel.images import download_name, resolve_image
from medseg.server.monailabel.infer import app_labels, model_infos, run_model
from medseg.server.monailabel.params import parse_params
from medseg.server.monailabel.results import (
    dicom_seg_bytes,
    file_response,
    label_file_bytes,
    multipart_response,
)
from medseg.server.state import ServerState, get_state

__all__ = ["router"]

router = APIRouter(tags=["MONAI Label"])
router.include_router(store_routes.router)
State = Annotated[ServerState, Depends(get_state)]
Output = Literal["image", "json", "all", "dicom_seg"]
_NOT_OFFERED = ("medseg does not {what} from MONAI Label clients: train a model with "
                "`medseg auto train` and serve it with --auto-model")  # fmt: skip
#: Active learning strategies: name -> description (``/info/`` ``strategies``).
STRATEGIES = {
    "first": {"description": "the first image without a label, in listing order"},
    "random": {"description": "a random image without a label"},
}


@router.get("/info/", summary="App, labels and models (MONAI Label)")
def info(state: State) -> dict[str, Any]:
    """MONAI Label's app info: name, version, labels, models, strategies, datastore counts."""
    entries = state.datastore.scan()
    done = sum(1 for e in entries if state.labels.versions(e))
    return {
        "name": "medseg",
        "description": "medseg annotation server (MONAI Label-compatible API)",
        "version": __version__,
        "labels": app_labels(state),
        "models": model_infos(state),
        "trainers": {},
        "strategies": STRATEGIES,
        "scoring": {},
        "train_stats": {},
        "datastore": {"total": len(entries), "completed": done},
    }


def _image(state: ServerState, image: str, session_id: str, file: UploadFile | None) -> ImageEntry:
    if session_id:
        return state.datastore.get(state.sessions.get(session_id).image_id)
    if file is not None and file.filename:
        return store_routes.upload_image(state, file, image or None)[0]
    return resolve_image(state.datastore, image)


@router.post("/infer/{model}", summary="Run a model on an image with clicks or text (MONAI Label)")
def infer(
    model: str, state: State,
    image: Annotated[str, Query(max_length=200)] = "",
    session_id: Annotated[str, Query(max_length=64)] = "",
    output: Output | None = None,
    params: Annotated[str, Form(max_length=1_000_000)] = "{}",
    file: Annotated[UploadFile | None, File()] = None,
    label: Annotated[UploadFile | None, File()] = None,
) -> Response:  # fmt: skip
    """The result label map on the image's grid: multipart (``params`` JSON + file),
    ``output=image`` the file only, ``json`` the JSON only, ``dicom_seg`` a DICOM-SEG."""
    if label is not None and label.filename:
        raise InputError("label inputs (scribbles volumes) are not supported; send clicks")
    entry = _image(state, image, session_id, file)
    img = state.datastore.load(entry.id)
    request = parse_params(params, img.ndim)
    labels, names, extra = run_model(state, model, entry.id, request)
    result = {"label_names": names, "model": model, "image": image or entry.id, **extra}
    if output == "json":
        return JSONResponse(result)
    if output == "dicom_seg":
        return file_response(dicom_seg_bytes(img, labels, names, entry), "seg.dcm")
    data = label_file_bytes(img, labels, request.extension, request.dtype, request.compress)
    filename = f"label_{secrets.token_hex(6)}{request.extension}"
    if output == "image":
        return file_response(data, filename)
    return multipart_response(result, filename, data)


def _not_offered(what: str) -> None:
    raise HTTPException(501, _NOT_OFFERED.format(what=what))


@router.get("/train/", summary="Not offered (501)")
def train_status() -> None:
    _not_offered("train")


@router.post("/train/", summary="Not offered (501)")
def train_start() -> None:
    _not_offered("train")


@router.delete("/train/", summary="Not offered (501)")
def train_stop() -> None:
    _not_offered("train")


@router.post("/train/{model}", summary="Not offered (501)")
def train_model(model: str) -> None:
    _not_offered("train")


@router.post("/activelearning/{strategy}", summary="Next image to label (MONAI Label)")
def activelearning(
    state: State, strategy: str, params: Annotated[dict[str, Any] | None, Body()] = None
) -> dict[str, Any]:
    """``{"id", "name", "path", "strategy"}`` of an image without a label (``name``: the
    file name ``GET /datastore/image`` sends; ``path`` empty, so viewers download it), or
    ``{}`` when every image is labelled."""
    if strategy not in STRATEGIES:
        raise NotFound(f"no active learning strategy {strategy!r}; this server offers "
                       f"{', '.join(STRATEGIES)}")  # fmt: skip
    pending = [e for e in state.datastore.scan() if not state.labels.versions(e)]
    if not pending:
        return {}
    entry = pending[0] if strategy == "first" else random.choice(pending)
    return {"id": entry.id, "name": download_name(entry), "path": "", "strategy": strategy,
            "info": entry.to_dict()}  # fmt: skip


@router.get("/auth/", summary="MONAI Label login: not used (medseg checks its own token)")
def auth() -> dict[str, Any]:
    return {
        "enabled": False,
        "client_id": "",
        "realm": "",
        "detail": "medseg does not use MONAI Label's login: requests carry medseg's access "
        "token ('Authorization: Bearer <token>'), or the server runs with --no-auth on "
        "127.0.0.1 (docs/monailabel.md)",
    }


@router.post("/auth/token", summary="Not offered (501)")
def auth_token() -> None:
    raise HTTPException(501, "medseg has no MONAI Label login: send the token `medseg serve` "
                             "printed as 'Authorization: Bearer <token>'")  # fmt: skip
