"""One DICOM file (single- or multi-frame) through pydicom, and DICOM geometry helpers.

- A single-frame file gives a 2D ``(H, W)`` image (``(H, W, 3)`` for colour) with
  ``spacing`` from PixelSpacing (or ImagerPixelSpacing), ``origin`` = the x, y of
  ImagePositionPatient and identity direction, as ``medseg.data.sample_ct`` does; the full
  3D position and orientation are kept in ``meta`` (``image_position_patient``,
  ``image_orientation_patient``).
- A multi-frame file gives a 3D ``(Z, Y, X[, 3])`` array, one frame per Z. When every frame
  has its own position (functional groups, e.g. Enhanced MR, DICOM-SEG with one segment)
  the frames are sorted along the slice normal and get full 3D geometry; otherwise (cine
  ultrasound, trimmed files) frames keep their order and ``meta["frame_axis"]`` says
  ``"frame"``.
- Values: RescaleSlope/Intercept are applied (CT in HU; integral rescales stay integer),
  MONOCHROME1 is inverted to MONOCHROME2 (``meta["inverted_monochrome1"]``), YBR colour is
  converted to RGB by pydicom.
- Irregular slice positions (series and multi-frame files): when a slice of the regular
  grid with the mean gap would lie more than ``IRREGULAR_TOLERANCE`` x that gap from its
  real position (e.g. gaps 202.5, 1.25, 1.25 mm), reading raises ``InputError`` unless
  ``irregular="mean"`` (CLI ``--allow-irregular-slices``) opts in to that grid with a
  warning; ``meta["slice_positions"]`` keeps the real positions. Smaller differences
  (rounding jitter) are read on the mean grid with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.io.image import Image

__all__ = [
    "read_dicom_file",
    "dicom_uids",
    "slice_geometry",
    "compact_integers",
    "decode_hint",
    "transfer_syntax",
    "sop_instance_uid",
    "IRREGULAR_MODES",
    "IRREGULAR_TOLERANCE",
    "check_irregular_mode",
]

log = logging.getLogger(__name__)

#: What to do with irregular slice positions: refuse (default) or use the mean gap.
IRREGULAR_MODES = ("error", "mean")
#: Largest slice misplacement, as a fraction of the mean gap, read without ``irregular``.
IRREGULAR_TOLERANCE = 0.1
_OPT_IN = "pass --allow-irregular-slices (Python: irregular='mean') to read it on that grid"

_DECODER_HINT = (
    "install a pixel-data decoder into the environment, e.g. `pip install pylibjpeg "
    "pylibjpeg-libjpeg pylibjpeg-openjpeg` (JPEG, JPEG 2000), `pip install pyjpegls` (JPEG-LS) "
    "or `pip install python-gdcm`"
)


def sop_instance_uid(ds: Any) -> str:
    """The dataset's SOP Instance UID, or the file meta header's when the dataset's is empty
    (anonymised exports such as TotalSegmentator's example series blank it)."""
    uid = str(ds.get("SOPInstanceUID", "") or "")
    meta = getattr(ds, "file_meta", None)
    return uid or (str(meta.get("MediaStorageSOPInstanceUID", "") or "") if meta else "")


def transfer_syntax(ds: Any) -> str:
    """``"<name> (<uid>)"`` of the dataset's transfer syntax, or ``"unknown"``."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return f"{ts.name} ({ts})" if ts is not None else "unknown"


def decode_hint(ds: Any) -> str:
    """Which transfer syntax a dataset uses, for error messages about decoding."""
    return f"transfer syntax {transfer_syntax(ds)}"


def dicom_uids(ds: Any) -> dict[str, Any]:
    """The identifying UIDs and descriptors medseg keeps in ``Image.meta`` for DICOM input."""
    return {
        "series_uid": str(ds.get("SeriesInstanceUID", "")),
        "study_uid": str(ds.get("StudyInstanceUID", "")),
        "frame_of_reference_uid": str(ds.get("FrameOfReferenceUID", "")),
        "sop_class_uid": str(ds.get("SOPClassUID", "")),
        "series_description": str(ds.get("SeriesDescription", "")),
        "photometric": str(ds.get("PhotometricInterpretation", "")),
    }


def compact_integers(arr: np.ndarray) -> np.ndarray:
    """Cast a signed/unsigned integer array to int16 when every value fits (HU data)."""
    if arr.dtype.kind in "iu" and arr.dtype.itemsize > 2 and arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo >= -32768 and hi <= 32767:
            return arr.astype(np.int16)
    return arr


def check_irregular_mode(irregular: str) -> str:
    """``irregular`` if it is one of ``IRREGULAR_MODES``, else ``InputError``."""
    if irregular not in IRREGULAR_MODES:
        raise InputError(f"irregular must be one of {list(IRREGULAR_MODES)}, got {irregular!r}")
    return irregular


def slice_geometry(
    orientation: Sequence[float],
    positions: Sequence[Sequence[float]],
    pixel_spacing: Sequence[float],
    path: Path | str = "",
    irregular: str = "error",
) -> tuple[np.ndarray, dict[str, Any]]:
    """Slice order and 3D geometry from ImageOrientationPatient/ImagePositionPatient.

    Hand-written because it is needed for multi-frame files and DICOM-SEG frames, which
    SimpleITK's series reader does not cover; it follows ITK: frames sorted along the normal
    ``row x column``, origin = first position, slice spacing = (last - first) / (n - 1).
    Irregular positions raise ``InputError`` naming ``path`` and the gaps unless
    ``irregular="mean"`` (see the module docstring).

    Returns:
        ``(order, geometry)``: the sorting permutation of the frames, and ``spacing``
        ``(sz, sy, sx)``, ``origin`` ``(x, y, z)``, ``direction`` (3x3 LPS, columns = x, y, z
        index axes), ``slice_gaps`` and ``uniform`` (gaps equal within 1e-3 mm).
    """
    check_irregular_mode(irregular)
    iop = np.asarray(orientation, dtype=float)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    pos = np.asarray(positions, dtype=float).reshape(-1, 3)
    dist = pos @ normal
    order = np.argsort(dist, kind="stable")
    gaps = np.diff(dist[order])
    n = len(order)
    sz = float((dist[order[-1]] - dist[order[0]]) / (n - 1)) if n > 1 else 1.0
    uniform = bool(n < 3 or np.ptp(gaps) < 1e-3)
    if n > 1 and sz <= 0:
        raise InputError(f"{path}: {n} slices share one position; cannot stack them")
    if not uniform:
        misplaced = np.abs(dist[order] - dist[order[0]] - sz * np.arange(n)).max()
        _irregular(path, gaps, sz, misplaced / sz > IRREGULAR_TOLERANCE and irregular == "error")
    geometry = {
        "spacing": (sz, float(pixel_spacing[0]), float(pixel_spacing[1])),
        "origin": tuple(float(v) for v in pos[order[0]]),
        "direction": np.stack([row, col, normal], axis=1),
        "slice_gaps": [float(g) for g in gaps],
        "uniform": uniform,
    }
    return order, geometry


def _irregular(path: Path | str, gaps: np.ndarray, mean_gap: float, refuse: bool) -> None:
    text = ", ".join(f"{g:.4g}" for g in gaps)
    if refuse:
        raise InputError(
            f"{path}: irregular slice positions (gaps {text} mm); a regular grid with the mean "
            f"gap {mean_gap:.4g} mm would put slices in the wrong place; {_OPT_IN} anyway"
        )
    log.warning(
        "%s: slice gaps are not uniform (%s mm); using the mean gap %.4g mm", path, text, mean_gap
    )


def _compressed(ds: Any) -> bool:
    """True when the transfer syntax is compressed (or unknown): only then may a decoder
    other than pydicom's native one be needed."""
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        return uid is None or bool(uid.is_compressed)
    except (AttributeError, ValueError):
        return True


def _pixels(ds: Any, path: Path) -> tuple[np.ndarray, bool]:
    """Decoded pixels and whether the modality rescale is already applied.

    pydicom decodes first; when it has no decoder for the transfer syntax (e.g. JPEG
    Lossless without pylibjpeg/gdcm installed), SimpleITK's bundled GDCM is tried, which
    applies RescaleSlope/Intercept itself.
    """
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        sop = getattr(ds.get("SOPClassUID"), "name", "unknown SOP class")
        raise InputError(f"{path}: DICOM file has no pixel data ({sop})")
    try:
        return ds.pixel_array, False
    except Exception as exc:  # pydicom raises RuntimeError/ValueError/NotImplementedError...
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        error = InputError(
            f"{path}: cannot decode pixel data with {decode_hint(ds)}: {first}; "
            f"SimpleITK/GDCM could not decode it either; {_DECODER_HINT}"
        )
        cause: BaseException = exc
    if not _compressed(ds):
        # pydicom decodes every native (uncompressed) syntax itself, so a failure there is a
        # corrupt file; GDCM's fallback on such files can allocate gigabytes (fuzz finding).
        raise InputError(
            f"{path}: cannot decode pixel data ({decode_hint(ds)}): {first}; the file is corrupt"
        ) from cause
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(str(path), imageIO="GDCMImageIO")
    except RuntimeError:
        raise error from cause
    arr = sitk.GetArrayFromImage(img)
    if int(ds.get("NumberOfFrames", 1) or 1) == 1 and arr.shape[0] == 1:
        arr = arr[0]
    log.info("%s: pydicom has no decoder for %s; decoded with GDCM", path, decode_hint(ds))
    return arr, True


def _rescale(arr: np.ndarray, ds: Any) -> np.ndarray:
    from pydicom.pixels import apply_rescale

    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    if slope == 1 and intercept == 0 and "SharedFunctionalGroupsSequence" not in ds:
        return arr
    out = apply_rescale(arr, ds)
    if out is arr or out.dtype == arr.dtype:  # no rescale found (e.g. SEG functional groups)
        return arr
    if slope.is_integer() and intercept.is_integer() and arr.dtype.kind in "iu":
        return compact_integers(np.round(out).astype(np.int32))
    return np.asarray(out, dtype=np.float32)


def _frame_geometry(ds: Any) -> tuple[list[Any], Any, Any] | None:
    """Per-frame positions plus shared orientation/spacing of a multi-frame file, if any."""
    groups = ds.get("PerFrameFunctionalGroupsSequence")
    if not groups:
        return None
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]

    def find(item: Any, seq: str, attr: str) -> Any:
        for source in (item, shared):
            if source is not None and seq in source and attr in source[seq][0]:
                return source[seq][0][attr].value
        return None

    positions = [find(g, "PlanePositionSequence", "ImagePositionPatient") for g in groups]
    orient = find(groups[0], "PlaneOrientationSequence", "ImageOrientationPatient")
    spacing = find(groups[0], "PixelMeasuresSequence", "PixelSpacing")
    if orient is None or spacing is None or any(p is None for p in positions):
        return None
    return positions, orient, spacing


def read_dicom_file(path: Path, *, modality: str | None = None, irregular: str = "error") -> Image:
    """Read one DICOM file with pydicom (see the module docstring for geometry rules)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a readable DICOM file ({exc})") from exc
    arr, rescaled = _pixels(ds, path)
    photometric = str(ds.get("PhotometricInterpretation", ""))
    meta: dict[str, Any] = {"path": str(path), "format": "dicom", **dicom_uids(ds)}
    meta["sop_instance_uids"] = [sop_instance_uid(ds)]
    meta["files"] = [str(path)]
    meta["transfer_syntax"] = transfer_syntax(ds)
    if photometric == "MONOCHROME1" and arr.dtype.kind in "iu":
        bits = int(ds.get("BitsStored", arr.dtype.itemsize * 8))
        top = (1 << bits) - 1 if arr.dtype.kind == "u" else int(arr.max()) + int(arr.min())
        arr = (top - arr.astype(np.int64)).astype(arr.dtype)
        meta["inverted_monochrome1"] = True
    arr = compact_integers(arr) if rescaled else _rescale(arr, ds)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    channels = int(ds.get("SamplesPerPixel", 1)) > 1
    kwargs: dict[str, Any] = {}
    if frames > 1:
        kwargs, arr = _multiframe_geometry(ds, arr, meta, path, irregular)
    else:
        found = _frame_geometry(ds)
        spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing") or (found and found[2])
        if spacing:
            kwargs["spacing"] = (float(spacing[0]), float(spacing[1]))
        if "ImagePositionPatient" in ds:
            ipp = [float(v) for v in ds.ImagePositionPatient]
            kwargs["origin"] = tuple(ipp[:2])
            meta["image_position_patient"] = ipp
        if "ImageOrientationPatient" in ds:
            meta["image_orientation_patient"] = [float(v) for v in ds.ImageOrientationPatient]
    return Image(
        array=arr,
        channels=channels,
        modality=modality or str(ds.get("Modality", "") or "unknown"),
        meta=meta,
        **kwargs,
    )


def _multiframe_geometry(
    ds: Any, arr: np.ndarray, meta: dict[str, Any], path: Path, irregular: str = "error"
) -> tuple[dict[str, Any], np.ndarray]:
    found = _frame_geometry(ds)
    if found is not None:
        positions, orient, spacing = found
        distinct = {tuple(round(float(v), 4) for v in p) for p in positions}
        if len(distinct) == len(positions):
            order, geo = slice_geometry(orient, positions, spacing, path, irregular)
            meta["uniform_spacing"] = geo["uniform"]
            meta["slice_positions"] = [[float(v) for v in positions[i]] for i in order]
            meta["slice_gaps"] = geo["slice_gaps"]
            meta["frame_order"] = [int(i) for i in order]
            kw = {k: geo[k] for k in ("spacing", "origin", "direction")}
            return kw, arr[order]
    meta["frame_axis"] = "frame"
    measures = ds.get("PixelSpacing") or (found[2] if found else None)
    sz = float(ds.get("SpacingBetweenSlices", 0) or 0) or 1.0
    if measures:
        return {"spacing": (sz, float(measures[0]), float(measures[1]))}, arr
    return {"spacing": (sz, 1.0, 1.0)}, arr
