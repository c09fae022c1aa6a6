"""``/api/dicomweb``: the DICOMweb server of ``medseg serve --dicomweb URL``.

- ``GET /api/dicomweb/series``: its image series, asked now (QIDO-RS), with their image ids
  (the same ids ``GET /api/images`` lists them under) and whether they are cached;
- ``POST /api/dicomweb/push/{image_id}?version=latest``: store a saved label version of a
  DICOMweb series on the server as a DICOM-SEG that references the series (STOW-RS).

Without ``--dicomweb`` both answer 404; a server that cannot be reached answers 503.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from medseg.errors import InputError
from medseg.server.datastore import IMAGE_ID, NotFound
from medseg.server.dicomweb_source import DicomwebEntry, DicomwebSource
from medseg.server.state import ServerState, get_state

__all__ = ["router", "source_of"]

router = APIRouter(prefix="/api/dicomweb", tags=["DICOMweb"])

State = Annotated[ServerState, Depends(get_state)]
ImageId = Annotated[str, Path(pattern=IMAGE_ID, description="image id from GET /api/images")]


def source_of(state: ServerState) -> DicomwebSource:
    """The app's DICOMweb source; ``NotFound`` (404) when the server has none."""
    source = getattr(state.datastore, "remote", None)
    if source is None:
        raise NotFound("this server has no DICOMweb server: start medseg serve --dicomweb URL")
    return source


@router.get("/series", summary="The DICOMweb server's image series (QIDO-RS)")
def list_series(state: State) -> dict[str, Any]:
    """``{"url", "series": [{id, name, modality, study_uid, series_uid, cached, versions}]}``;
    a series that is also in the folder is listed under its local id."""
    source = source_of(state)
    remote = source.series(strict=True)
    local = {e.series_uid: e for e in state.datastore.scan()
             if e.series_uid and not isinstance(e, DicomwebEntry)}  # fmt: skip
    out = []
    for e in remote:
        shown = local.get(e.series_uid, e)
        out.append({
            **state.summary(shown), "study_uid": e.study_uid, "series_uid": e.series_uid,
            "cached": source.is_cached(e), "local": e.series_uid in local,
        })  # fmt: skip
    return {"url": source.ref.base_url, "series": out}


@router.post("/push/{image_id}", summary="Store a label version as DICOM-SEG (STOW-RS)")
def push_version(
    image_id: ImageId, state: State,
    version: Annotated[str, Query(pattern=r"^(latest|\d{1,6})$")] = "latest",
) -> dict[str, Any]:  # fmt: skip
    """The SEG's ``study_uid``, ``series_uid``, ``sop_instance_uid``, the version pushed."""
    source = source_of(state)
    entry = state.datastore.get(image_id)
    if not isinstance(entry, DicomwebEntry):
        raise InputError(f"{entry.name} is not a DICOMweb series: only those are pushed")
    image = state.datastore.load(entry.id)
    info, arr = state.labels.read(entry, version if version == "latest" else int(version), image)
    names = {lab.value: lab.name for lab in info.labels}
    return {**source.push_labels(entry, image, arr, names), "version": info.version}
