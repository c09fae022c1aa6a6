"""MONAI Label ``/datastore/`` and ``/session/`` endpoints on medseg's datastore.

Uploads land in ``DATA_DIR/uploads/`` like the browser app's (checked the same way by
:func:`medseg.server.uploads.store_upload`); labels are saved as new label versions
(:class:`medseg.server.labelstore.LabelStore`), never overwriting one. A MONAI Label session
is a medseg session on an uploaded image, so the image stays in ``uploads/`` afterwards.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import Response

from medseg.errors import InputError, MedsegError
from medseg.server.datastore import ImageEntry, NotFound
from medseg.server.dicomweb_source import DicomwebEntry
from medseg.server.labelstore import LabelInfo
from medseg.server.monailabel.images import (
    download_name,
    image_suffix,
    label_suffix,
    name_key,
    read_label_file,
    resolve_image,
    scratch,
    stage_file,
    staging,
    store_named,
)
from medseg.server.monailabel.results import file_response, label_file_bytes
from medseg.server.sessions import Session
from medseg.server.state import ServerState, get_state
from medseg.server.uploads import UploadedFile, label_body_limit, safe_filename, store_upload

__all__ = ["router", "session_info", "upload_image", "TAG_NOTE"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["MONAI Label"])
State = Annotated[ServerState, Depends(get_state)]
Params = Annotated[str, Form(max_length=1_000_000, description="JSON object")]
#: Saved versions record their MONAI Label tag in the note: ``MONAI Label (tag final)``.
TAG_NOTE = "MONAI Label (tag {tag})"
_TAG_RE = re.compile(r"MONAI Label \(tag (.+)\)")
_PALETTE = ("#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0",
            "#f032e6", "#bcf60c", "#fabebe", "#008080", "#e6beff")  # fmt: skip


def _json(text: str | None, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError as exc:
        raise InputError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InputError(f"{what} must be a JSON object")
    return value


def upload_image(state: ServerState, file: UploadFile, name: str | None) -> tuple[ImageEntry, str]:
    """Store an uploaded image under ``name`` (default: its file name without extension)."""
    suffix = image_suffix(file.filename)
    base = safe_filename(file.filename or "image")
    name = name or base[: -len(suffix)]
    with staging(state.datastore) as folder:
        staged = stage_file(file, folder, "upload" + suffix, state.config.max_upload_bytes)
        entry = store_named(state.datastore, name, staged, state.config.max_image_voxels)
    log.info("MONAI Label upload %r -> %s", name, entry.name)
    return entry, name


@router.put("/datastore/", summary="Upload an image (MONAI Label)", include_in_schema=False)
@router.put("/datastore/image", summary="Upload an image (MONAI Label)")
def add_image(
    state: State, file: Annotated[UploadFile, File()], params: Params = "{}",
    image: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:  # fmt: skip
    _json(params, "params")
    entry, name = upload_image(state, file, image)
    return {"image": name, "id": entry.id, "name": entry.name}


def _stats(state: ServerState, entries: list[ImageEntry]) -> dict[str, Any]:
    done = sum(1 for e in entries if state.labels.versions(e))
    return {"total": len(entries), "completed": done, "pending": len(entries) - done}


def _tags(versions: list[Any]) -> dict[str, Any]:
    """MONAI Label's ``labels`` of one image: tag -> newest version with that tag
    (``final``: the newest version, whoever saved it)."""
    tags: dict[str, Any] = {}
    for v in versions:  # oldest first, so the newest of each tag stays
        match = _TAG_RE.fullmatch(v.note or "")
        if match and match.group(1) != "final":
            tags[match.group(1)] = {"ext": ".nii.gz", "info": v.to_dict()}
    if versions:
        tags["final"] = {"ext": ".nii.gz", "info": versions[-1].to_dict()}
    return tags


@router.get("/datastore/", summary="Datastore statistics or listing (MONAI Label)")
def datastore(state: State, output: Literal["stats", "all", "train"] = "stats") -> dict:
    """``stats``: counts; ``all``: also ``objects`` (image id -> ``image`` with ``ext`` and
    ``info``, ``labels`` tag -> ``ext`` and ``info``); ``train`` is the same as ``all``."""
    entries = state.datastore.scan()
    out: dict[str, Any] = {"name": state.datastore.root.name, **_stats(state, entries)}
    if output == "stats":
        return out
    objects = {}
    for e in entries:
        name = download_name(e)
        ext = ".nii.gz" if name.lower().endswith(".nii.gz") else Path(name).suffix
        image = {"id": e.id, "ext": ext, "info": e.to_dict()}
        objects[e.id] = {"image": image, "labels": _tags(state.labels.versions(e))}
    return {**out, "objects": objects}


def _label_infos(params: dict[str, Any], values: list[int]) -> list[LabelInfo]:
    names: dict[int, str] = {}
    for item in params.get("label_info") or []:  # 3D Slicer: [{"name": ..., "idx": ...}]
        if isinstance(item, dict) and isinstance(item.get("idx"), int):
            names[int(item["idx"])] = str(item.get("name") or f"label {item['idx']}")
    for name, value in (params.get("label_names") or {}).items():
        if isinstance(value, int) and value > 0:
            names[value] = str(name)
    return [LabelInfo(v, names.get(v, f"label {v}")[:100], _PALETTE[(v - 1) % len(_PALETTE)])
            for v in values]  # fmt: skip


@router.put("/datastore/label", summary="Save a label map as a new version (MONAI Label)")
def save_label(
    state: State, label: Annotated[UploadFile, File()],
    image: Annotated[str, Query(max_length=200)], params: Params = "{}",
    tag: Annotated[str, Query(max_length=50)] = "final",
) -> dict[str, Any]:  # fmt: skip
    """Save the ``label`` file (on the image's grid, ``(Z, Y, X)`` voxels; ``.bin``: raw
    uint8, x fastest) as a new label version; names from ``label_info`` / ``label_names``."""
    extra = _json(params, "params")
    entry = resolve_image(state.datastore, image)
    img = state.datastore.load(entry.id)
    suffix = label_suffix(label.filename)
    with scratch() as folder:
        # one rule for every label save: at most what a label map of this image can take
        limit, _ = label_body_limit(img.shape, state.config.max_label_body_bytes)
        limit = min(limit, state.config.max_upload_bytes)
        path = stage_file(label, folder, "label" + suffix, limit)
        try:
            arr = read_label_file(path, img)
        except InputError as exc:  # name the client's file, not the scratch path
            text = str(exc).replace(str(path), repr(label.filename or "label"))
            raise InputError(f"the label cannot be used: {text}") from exc
    values = [int(v) for v in np.unique(arr) if v != 0]
    if values and values[-1] > 65535:
        raise InputError(f"label value {values[-1]} is larger than 65535")
    note = TAG_NOTE.format(tag=tag or "final")
    infos = _label_infos(extra, values)
    info = state.labels.save(entry, img, arr, infos, note)
    out = {"image": image, "label": image, "tag": tag or "final", "version": info.version}
    pushed = _push(state, entry, img, arr, {i.value: i.name for i in infos}, extra, info.version)
    return out if pushed is None else {**out, "dicomweb": pushed}


def _push(
    state: ServerState, entry: ImageEntry, img: Any, arr: np.ndarray, names: dict[int, str],
    extra: dict[str, Any], version: int,
) -> dict[str, Any] | None:  # fmt: skip
    """Store a saved label of a DICOMweb series as a DICOM-SEG on the server when
    ``params.push`` says so (default: ``--dicomweb-push``); None when not pushed."""
    asked = "push" in extra
    if not extra.get("push", state.config.dicomweb_push):
        return None
    source = getattr(state.datastore, "remote", None)
    if source is None or not isinstance(entry, DicomwebEntry):
        if asked:
            raise InputError(f"label saved as version {version}; push: {entry.name} is not a "
                             "series of the DICOMweb server (medseg serve --dicomweb)")  # fmt: skip
        return None
    if not names:
        return {"skipped": "the label map is empty: no DICOM-SEG stored"}
    try:
        return source.push_labels(entry, img, arr, names)
    except InputError as exc:  # DicomwebUnavailable (503) keeps its type
        raise type(exc)(f"the label was saved as version {version}, but storing it on the "
                        f"DICOMweb server failed: {exc}; retry with POST /api/dicomweb/push/"
                        f"{entry.id}?version={version}") from exc  # fmt: skip


@router.get("/datastore/label", summary="Download the latest label of a tag (MONAI Label)")
def download_label(
    state: State, label: Annotated[str, Query(max_length=200)],
    tag: Annotated[str, Query(max_length=50)] = "final",
) -> Response:  # fmt: skip
    """``final``: the newest version (whoever saved it); another tag: the newest version
    saved with that tag."""
    entry = resolve_image(state.datastore, label)
    note = TAG_NOTE.format(tag=tag)
    versions = [v for v in state.labels.versions(entry) if tag == "final" or v.note == note]
    if not versions:
        raise NotFound(f"{entry.name}: no label with tag {tag!r}")
    img = state.datastore.load(entry.id)
    info, arr = state.labels.read(entry, versions[-1].version, img)
    data = label_file_bytes(img, arr, ".nii.gz")
    return file_response(data, f"{name_key(label)}_v{info.version}.nii.gz")


def _image_download(state: ServerState, entry: ImageEntry) -> Response:
    """The image file of ``entry`` (see :func:`~.images.download_name`)."""
    from medseg.io.writers import save

    name = download_name(entry)
    if name == entry.path.name and entry.path.is_file():
        return file_response(entry.path.read_bytes(), name)
    with scratch() as folder:
        try:
            out = save(state.datastore.load(entry.id), folder / "image.nrrd")
        except MedsegError as exc:  # name the image, not the scratch path
            raise InputError(f"{entry.name} cannot be sent as one file: {exc}") from exc
        return file_response(out.read_bytes(), name)


@router.get("/datastore/image", summary="Download an image (MONAI Label)")
def download_image(state: State, image: Annotated[str, Query(max_length=200)]) -> Response:
    return _image_download(state, resolve_image(state.datastore, image))


# ---- sessions -------------------------------------------------------------------------
def session_info(state: ServerState, session: Session) -> dict[str, Any]:
    """MONAI Label's ``SessionInfo`` of a medseg session (``image`` is the image id)."""
    entry = state.datastore.get(session.image_id)
    return {"name": session.id, "path": "", "image": entry.id,
            "meta": {"image": entry.id, "name": entry.name},
            "create_ts": int(session.created), "last_access_ts": int(session.last_used),
            "expiry": 0}  # fmt: skip


def _session_image(state: ServerState, files: list[UploadFile]) -> ImageEntry:
    if len(files) == 1:
        return upload_image(state, files[0], None)[0]
    with staging(state.datastore) as folder:
        limit = state.config.max_upload_bytes
        staged = [
            UploadedFile(f.filename or "", stage_file(f, folder, f"{i:05d}.dcm", limit))
            for i, f in enumerate(files)
        ]
        return store_upload(state.datastore, staged, state.config.max_image_voxels)


@router.put("/session/", summary="Start a session on an uploaded image (MONAI Label)")
def create_session(
    state: State, files: Annotated[list[UploadFile], File()], uncompress: bool = False,
    expiry: int = 0,
) -> dict[str, Any]:  # fmt: skip
    if uncompress:
        raise InputError("uncompress=true (archives) is not supported: send the image files")
    entry = _session_image(state, files)
    session = state.sessions.create(entry.id)
    return {"session_id": session.id, "session_info": session_info(state, session)}


@router.get("/session/{session_id}", summary="Describe a session (MONAI Label)")
def get_session(state: State, session_id: str, image: bool = False) -> Any:
    session = state.sessions.get(session_id)
    if image:
        return _image_download(state, state.datastore.get(session.image_id))
    return session_info(state, session)


@router.delete("/session/{session_id}", summary="Close a session (MONAI Label)")
def remove_session(state: State, session_id: str) -> dict[str, Any]:
    session = state.sessions.get(session_id)
    info = session_info(state, session)
    state.sessions.close(session_id)
    info["last_access_ts"] = int(time.time())
    return info
