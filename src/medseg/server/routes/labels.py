"""``/api/images/{id}/labels``: save, list, read and restore versions; export them."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path as FsPath
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import ValidationError

from medseg.errors import InputError
from medseg.io.image import LabelMap
from medseg.server.datastore import IMAGE_ID, ImageEntry
from medseg.server.encoding import png_bytes, rle_decode, rle_encode
from medseg.server.labelstore import LabelInfo, VersionInfo
from medseg.server.schemas import (
    LabelData,
    LabelSaveRequest,
    VersionOut,
    ViewName,
    public_errors,
)
from medseg.server.state import ServerState, get_state
from medseg.server.uploads import label_body_limit
from medseg.server.views import view_slice

__all__ = ["router"]

router = APIRouter(prefix="/api/images/{image_id}/labels", tags=["labels"])

State = Annotated[ServerState, Depends(get_state)]
ImageId = Annotated[str, Path(pattern=IMAGE_ID)]
Version = Annotated[str, Path(pattern=r"^(latest|[0-9]{1,6})$", description="number or 'latest'")]
ExportFormat = Literal["nifti", "png", "dicom-seg"]
_MEDIA = {"nifti": "application/gzip", "png": "image/png", "dicom-seg": "application/dicom"}


def _version(v: str) -> int | str:
    return v if v == "latest" else int(v)


@router.get("", response_model=list[VersionOut], summary="List saved label versions")
def list_versions(image_id: ImageId, state: State) -> list[dict]:
    entry = state.datastore.get(image_id)
    return [v.to_dict() for v in state.labels.versions(entry)]


_SAVE_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                k: v
                for k, v in LabelSaveRequest.model_json_schema(
                    ref_template="#/components/schemas/{model}"
                ).items()
                if k != "$defs"
            }
        }
    },
}


async def _read_body(request: Request, limit: int, what: str) -> bytes:
    """The request body, refused with 413 when its declared size (Content-Length) or, while
    it streams in, its size exceeds ``limit`` bytes (``what`` names the limit): nothing
    is parsed before, and a 100 MB body costs at most ``limit`` bytes of memory."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"label body of {int(length):,} bytes is larger than {what}; refused unread",
        )
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"label body larger than {what}; refused before parsing it",
            )
        chunks.append(chunk)
    return b"".join(chunks)


_TOO_LARGE = "body larger than max_label_body_bytes or than a label map of the image can take"


def _image_shape(state: ServerState, image_id: str) -> tuple[int, ...]:
    """The spatial shape of the image a label save is for (decoded: the save needs it)."""
    return state.datastore.load(state.datastore.get(image_id).id).shape


def _parse_save(raw: bytes) -> LabelSaveRequest:
    """Validate a label-save body while parsing it (pydantic's JSON parser: NaN, infinity,
    out-of-range counts or values -> 422, never 500)."""
    try:
        return LabelSaveRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, public_errors(exc.errors())
        ) from exc


def _save(state: ServerState, image_id: str, raw: bytes) -> dict:
    body = _parse_save(raw)
    entry = state.datastore.get(image_id)
    image = state.datastore.load(entry.id)
    if tuple(body.data.shape) != image.shape:
        raise InputError(f"label shape {tuple(body.data.shape)} does not match the image "
                         f"{image.shape}")  # fmt: skip
    values = [d.value for d in body.labels]
    if len(set(values)) != len(values):
        raise InputError("label values must be unique")
    dtype = np.uint16 if max(values, default=0) > 255 else np.uint8
    arr = rle_decode(body.data.shape, body.data.values, body.data.counts, dtype)
    labels = [LabelInfo(d.value, d.name, d.color.lower()) for d in body.labels]
    return state.labels.save(entry, image, arr, labels, body.note).to_dict()


@router.post(
    "",
    response_model=VersionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Save the labels as a new version (RLE of the whole label map)",
    openapi_extra={"requestBody": _SAVE_BODY},
    responses={413: {"description": _TOO_LARGE}},
)
async def save_labels(image_id: ImageId, request: Request, state: State) -> dict:
    shape = await run_in_threadpool(_image_shape, state, image_id)
    limit, what = label_body_limit(shape, state.config.max_label_body_bytes)
    raw = await _read_body(request, limit, what)
    return await run_in_threadpool(_save, state, image_id, raw)


@router.get(
    "/{version}", response_model=LabelData, summary="A version's label map (RLE) and labels"
)
def get_version(image_id: ImageId, version: Version, state: State) -> dict:
    entry = state.datastore.get(image_id)
    image = state.datastore.load(entry.id)
    info, arr = state.labels.read(entry, _version(version), image)
    return {"version": info.to_dict(), "data": rle_encode(arr)}


@router.post(
    "/{version}/restore",
    response_model=VersionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Restore a version (saved again as the newest version; history is kept)",
)
def restore_version(image_id: ImageId, version: Version, state: State) -> dict:
    entry = state.datastore.get(image_id)
    image = state.datastore.load(entry.id)
    info = state.labels.get(entry, _version(version))
    return state.labels.restore(entry, info.version, image).to_dict()


def _export_bytes(
    state: ServerState, entry: ImageEntry, info: VersionInfo, arr: np.ndarray, fmt: str,
    view: str, index: int | None,
) -> bytes:  # fmt: skip
    from medseg.io.dicomseg import save_dicom_seg
    from medseg.io.writers import save

    image = state.datastore.load(entry.id)
    names = {lab.value: lab.name for lab in info.labels}
    if fmt == "png":
        if image.ndim == 3 and index is None:
            raise InputError("PNG export of a volume is per slice: give index (and view)")
        return png_bytes(
            arr if image.ndim == 2 else view_slice(LabelMap.like(image, arr), view, index)
        )
    with tempfile.TemporaryDirectory(prefix="medseg-export-") as tmp:
        if fmt == "nifti":
            out = save(LabelMap.like(image, arr, label_names=names), FsPath(tmp) / "labels.nii.gz")
        else:
            if not entry.is_dicom:
                raise InputError(f"{entry.name} is not a DICOM series: DICOM-SEG needs one")
            source = LabelMap.like(image, arr, label_names=names)
            out = save_dicom_seg(source, entry.path, FsPath(tmp) / "seg.dcm", names,
                                 series_uid=entry.series_uid)  # fmt: skip
        return out.read_bytes()


@router.get(
    "/{version}/export",
    response_class=Response,
    responses={200: {"content": {m: {} for m in _MEDIA.values()}}},
    summary="Export a version as NIfTI, PNG (2D, or one slice of a volume) or DICOM-SEG",
)
def export_version(
    image_id: ImageId,
    version: Version,
    state: State,
    format: ExportFormat = "nifti",
    view: ViewName = "axial",
    index: Annotated[int | None, Query(ge=0, description="slice (PNG of a volume)")] = None,
) -> Response:
    entry = state.datastore.get(image_id)
    info, arr = state.labels.read(entry, _version(version), state.datastore.load(entry.id))
    data = _export_bytes(state, entry, info, arr, format, view, index)
    base = FsPath(entry.name.split(" (")[0].split(" [")[0]).name.split(".")[0]
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", base).strip("_") or "image"
    ext = {"nifti": ".nii.gz", "png": ".png", "dicom-seg": ".dcm"}[format]
    suffix = f"_{view}{index}" if format == "png" and index is not None else ""
    filename = f"{stem}_labels_v{info.version}{suffix}{ext}"
    disposition = f'attachment; filename="{filename}"'
    return Response(data, media_type=_MEDIA[format], headers={"Content-Disposition": disposition})
