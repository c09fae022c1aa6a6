"""``/api/images``: list images, describe one, render display slices, upload new ones."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, File, HTTPException, Path, Query, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from medseg.server.datastore import IMAGE_ID
from medseg.server.encoding import png_bytes
from medseg.server.schemas import ImageDetail, ImageSummary, ViewName
from medseg.server.state import ServerState, get_state
from medseg.server.uploads import (
    UploadedFile,
    discard,
    safe_filename,
    staging_dir,
    store_upload,
    upload_format,
)
from medseg.server.views import render_slice, resolve_window

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/images", tags=["images"])

State = Annotated[ServerState, Depends(get_state)]
ImageId = Annotated[str, Path(pattern=IMAGE_ID, description="image id from GET /api/images")]
_CHUNK = 1 << 20


@router.get("", response_model=list[ImageSummary], summary="List the datastore's images")
def list_images(state: State) -> list[dict]:
    return [state.summary(e) for e in state.datastore.scan()]


@router.get("/{image_id}", response_model=ImageDetail, summary="Image metadata for display")
def image_detail(image_id: ImageId, state: State) -> dict:
    return state.detail(state.datastore.get(image_id))


@router.get(
    "/{image_id}/slice",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "8-bit PNG slice"}},
    summary="A display-windowed slice as PNG",
)
def image_slice(
    image_id: ImageId,
    state: State,
    view: ViewName = "axial",
    index: Annotated[int, Query(ge=0, description="slice index in the view")] = 0,
    window: Annotated[
        str | None, Query(max_length=32, description="soft_tissue, lung, bone, brain, ..., auto")
    ] = None,
    level: Annotated[float | None, Query(description="window centre (with width)")] = None,
    width: Annotated[float | None, Query(gt=0, description="window width (with level)")] = None,
) -> Response:
    image = state.datastore.load(state.datastore.get(image_id).id)
    rng = resolve_window(image, window, level, width)
    data = png_bytes(render_slice(image, view, index, rng))
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=60"})


async def _stage(state: ServerState, files: list[UploadFile]) -> list[UploadedFile]:
    """Copy the uploaded parts into a staging folder, enforcing the size limit."""
    folder = staging_dir(state.datastore)
    limit = state.config.max_upload_bytes
    total = 0
    staged = []
    try:
        for i, upload in enumerate(files):
            name = upload.filename or ""
            upload_format(name)  # unsupported type: 415 before reading anything
            target = folder / f"{i:05d}_{safe_filename(name)}"
            with open(target, "wb") as out:
                while chunk := await upload.read(_CHUNK):
                    total += len(chunk)
                    if total > limit:
                        raise HTTPException(
                            413,
                            f"upload larger than the limit of {limit} bytes",
                        )
                    await run_in_threadpool(out.write, chunk)
            if target.stat().st_size == 0:
                raise HTTPException(status.HTTP_400_BAD_REQUEST, f"{upload.filename!r} is empty")
            staged.append(UploadedFile(name, target))
    except BaseException:
        discard(folder)
        raise
    return staged


@router.post(
    "",
    response_model=ImageSummary,
    status_code=status.HTTP_201_CREATED,
    summary="Upload an image (checked: type, size, signature, decodable)",
)
async def upload_image(
    state: State,
    files: Annotated[list[UploadFile], File(description="one image, or a DICOM series' files")],
) -> dict:
    staged = await _stage(state, files)
    folder = staged[0].path.parent if staged else None
    try:
        entry = await run_in_threadpool(
            store_upload, state.datastore, staged, state.config.max_image_voxels
        )
    finally:
        if folder is not None:
            discard(folder)
    log.info("uploaded %s", entry.name)
    return state.summary(entry)
