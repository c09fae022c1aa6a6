"""Result files and responses of the MONAI Label API.

An ``/infer`` result is the label map on the image's grid (same size, spacing, origin and
direction, so 3D Slicer and OHIF overlay it without resampling) as NIfTI or NRRD, sent

- as ``multipart/form-data`` (``output`` absent or ``all``): a ``params`` part (JSON: the
  ``label_names`` ``{name: value}``, latencies, ...) and an ``image`` part holding the file;
- as the file alone (``output=image``), or the JSON alone (``output=json``);
- as a DICOM-SEG (``output=dicom_seg``) for images that are DICOM series.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import numpy as np
from fastapi.responses import Response

from medseg.io.image import Image, LabelMap
from medseg.server.monailabel.images import scratch

__all__ = ["label_file_bytes", "dicom_seg_bytes", "file_response", "multipart_response"]

_MEDIA = {".nii.gz": "application/gzip", ".nii": "application/octet-stream",
          ".nrrd": "application/octet-stream", ".dcm": "application/dicom",
          ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
          ".tif": "image/tiff", ".tiff": "image/tiff"}  # fmt: skip


def label_file_bytes(
    image: Image, labels: np.ndarray, ext: str, dtype: Any = np.uint8, compress: bool = True
) -> bytes:
    """The label map ``labels`` (``image.shape``) on ``image``'s grid as a NIfTI / NRRD file
    (``ext``), stored as ``dtype`` (uint16 when a value does not fit)."""
    import SimpleITK as sitk

    from medseg.io.volume import image_to_sitk

    arr = np.asarray(labels)
    if arr.size and int(arr.max()) > np.iinfo(dtype).max:
        dtype = np.uint16
    label_map = LabelMap.like(image, arr.astype(dtype))
    with scratch() as folder:
        path = folder / f"label{ext}"
        sitk.WriteImage(image_to_sitk(label_map), str(path), useCompression=bool(compress))
        return path.read_bytes()


def dicom_seg_bytes(image: Image, labels: np.ndarray, names: dict[str, int], entry: Any) -> bytes:
    """The label map as a DICOM-SEG referencing the image's DICOM series."""
    from medseg.errors import InputError
    from medseg.io.dicomseg import save_dicom_seg

    if not entry.is_dicom:
        raise InputError(f"{entry.name} is not a DICOM series: output=dicom_seg needs one")
    by_value = {v: n for n, v in names.items()}
    source = LabelMap.like(image, np.asarray(labels), label_names=by_value)
    with scratch() as folder:
        out = save_dicom_seg(source, entry.path, folder / "seg.dcm", by_value,
                             series_uid=entry.series_uid)  # fmt: skip
        return out.read_bytes()


def file_response(data: bytes, filename: str) -> Response:
    """A file download (``Content-Disposition`` carries the name and so the extension)."""
    ext = next((e for e in _MEDIA if filename.lower().endswith(e)), ".nii")
    disposition = f'attachment; filename="{filename}"'
    return Response(data, media_type=_MEDIA[ext], headers={"Content-Disposition": disposition})


def multipart_response(params: dict[str, Any], filename: str, data: bytes) -> Response:
    """``multipart/form-data`` with a ``params`` JSON part and an ``image`` file part."""
    boundary = secrets.token_hex(16)
    ext = next((e for e in _MEDIA if filename.lower().endswith(e)), ".nii")
    head_params = 'Content-Disposition: form-data; name="params"\r\nContent-Type: application/json'
    head_file = (f'Content-Disposition: form-data; name="image"; filename="{filename}"\r\n'
                 f"Content-Type: {_MEDIA[ext]}")  # fmt: skip
    body = b""
    for head, payload in ((head_params, json.dumps(params).encode()), (head_file, data)):
        body += f"--{boundary}\r\n{head}\r\n\r\n".encode() + payload + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return Response(body, media_type=f"multipart/form-data; boundary={boundary}")
