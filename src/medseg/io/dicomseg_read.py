"""DICOM-SEG import with highdicom (export: :mod:`medseg.io.dicomseg`).

``load_dicom_seg`` rebuilds a ``LabelMap``: on the grid of ``reference`` (the source
``Image`` or its folder) when given, else on the referenced series when it lies in the SEG's
folder or a sibling folder, else on the regular grid that the SEG frames describe.
``find_seg`` tells whether a path is (or a folder holds) a SEG.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.io.dicomseg import SEG_SOP_CLASS, _with_sop_uids, stable_uid
from medseg.io.image import Image, LabelMap

__all__ = ["find_seg", "load_dicom_seg"]

log = logging.getLogger(__name__)

_VALUE_RE = re.compile(r"label value (\d+)")  # the SegmentDescription save_dicom_seg writes


def find_seg(path: Path, series_uid: str | None) -> Path | None:
    """The DICOM-SEG file that ``path`` (a file or folder) designates, else ``None``."""
    import pydicom

    if path.is_file():
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        except Exception as exc:  # corrupt: the image reader reports it in detail
            log.debug("%s: not readable as DICOM header (%s)", path, exc)
            return None
        return path if str(ds.get("SOPClassUID", "")) == SEG_SOP_CLASS else None
    from medseg.io.dicom import list_dicom_series

    series = list_dicom_series(path)
    if series_uid is not None:
        match = [s for s in series if s.series_uid == series_uid]
    else:
        match = [s for s in series if s.modality == "SEG"]
    if match and match[0].modality == "SEG":
        if len(match) > 1:
            log.info("%s: %d SEG series; reading %s", path, len(match), match[0].series_uid)
        return match[0].files[0]
    return None


def _segment_values(seg: Any) -> tuple[dict[int, int], dict[int, str]]:
    """Segment number -> label value, and label value -> name."""
    values: dict[int, int] = {}
    names: dict[int, str] = {}
    for number in seg.segment_numbers:
        desc = seg.get_segment_description(number)
        match = _VALUE_RE.fullmatch(str(desc.get("SegmentDescription", "")).strip())
        value = int(match.group(1)) if match else int(number)
        values[int(number)] = value
        names[value] = str(desc.segment_label)
    return values, names


def _generated_series_uid(files: tuple[Path, ...]) -> str:
    """The ``stable_uid`` a SEG written by medseg gives a series that has no UID."""
    import pydicom

    sops = []
    for f in files:
        ds = _with_sop_uids(pydicom.dcmread(f, stop_before_pixels=True), f)
        sops.append(str(ds.SOPInstanceUID))
    return stable_uid("series", sops)


def _find_reference(path: Path, seg: Any) -> tuple[Path, str] | None:
    """A folder next to the SEG (its own folder or a sibling) holding the referenced series,
    and that series' UID in the folder (blank for a series whose UID medseg generated)."""
    from medseg.io.dicom import list_dicom_series

    try:
        wanted = str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)
    except (AttributeError, IndexError):
        return None
    # Only the SEG's own folder and its direct subfolders, each without recursion, so a SEG
    # saved in a large folder (a home directory) does not trigger a deep scan.
    folders = [path.parent, *sorted(p for p in path.parent.iterdir() if p.is_dir())]
    for folder in folders[:50]:
        try:
            series = list_dicom_series(folder, recursive=False)
        except InputError:
            continue
        for s in series:
            if s.series_uid == wanted or (
                not s.series_uid.strip() and _generated_series_uid(s.files) == wanted
            ):
                return folder, s.series_uid
    return None


def _read_seg(path: Path) -> Any:
    """``highdicom.seg.segread``, re-encoding big-endian files as little endian first.

    highdicom parses only little-endian datasets; pydicom decodes big-endian pixel data, so
    the frames are re-packed (1-bit BINARY frames with ``pack_bits``) in memory.
    """
    import io

    import highdicom as hd
    import pydicom
    from pydicom.filewriter import dcmwrite
    from pydicom.pixels import pack_bits
    from pydicom.uid import ExplicitVRLittleEndian

    ds = pydicom.dcmread(path)
    if ds.file_meta.TransferSyntaxUID.is_little_endian:
        return hd.seg.Segmentation.from_dataset(ds)
    arr = ds.pixel_array
    for _ in ds.iterall():  # decode every raw big-endian element before re-encoding
        pass
    if int(ds.BitsAllocated) == 1:
        ds.PixelData = pack_bits(arr)
    else:
        ds.PixelData = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    buf.seek(0)
    log.debug("%s: re-encoded big-endian SEG as little endian for highdicom", path)
    return hd.seg.segread(buf)


def load_dicom_seg(
    path: Path, *, reference: Image | str | os.PathLike[str] | None, irregular: str = "error"
) -> LabelMap:
    """Read a DICOM-SEG file as a ``LabelMap`` (see the module docstring).

    ``irregular`` is passed to ``load`` when the reference series is read from a folder.
    """

    from medseg.io.readers import load

    try:
        seg = _read_seg(path)
    except Exception as exc:  # highdicom/pydicom raise many types for malformed objects
        raise InputError(f"{path}: not a readable DICOM-SEG ({exc})") from exc
    values, names = _segment_values(seg)
    if reference is None:
        found = _find_reference(path, seg)
        if found is not None:
            log.info("%s: rebuilding on the referenced series in %s", path, found[0])
            reference = load(found[0], series_uid=found[1], irregular=irregular)
    if reference is not None:
        ref = reference if isinstance(reference, Image) else load(reference, irregular=irregular)
        return _on_reference(seg, ref, values, names, path)
    return _on_own_grid(seg, values, names, path)


def _lookup(arr: np.ndarray, values: dict[int, int]) -> np.ndarray:
    top = max([*values.values(), 0])
    lut = np.zeros(max([*values, 0]) + 1, dtype=np.uint16 if top > 255 else np.uint8)
    for number, value in values.items():
        lut[number] = value
    return lut[arr]


def _on_reference(
    seg: Any, ref: Image, values: dict[int, int], names: dict[int, str], path: Path
) -> LabelMap:
    uids = list(ref.meta.get("sop_instance_uids") or [])
    referenced = {str(uid_triple[2]) for uid_triple in seg.get_source_image_uids()}
    if not uids or not referenced.intersection(uids):
        raise InputError(f"{path}: the DICOM-SEG does not refer to the reference series' images")
    try:
        arr = seg.get_pixels_by_source_instance(
            uids, combine_segments=True, relabel=False, assert_missing_frames_are_empty=True
        )
    except (RuntimeError, ValueError, KeyError) as exc:
        raise InputError(
            f"{path}: cannot rebuild the label map on the source grid ({exc})"
        ) from exc
    arr = _lookup(np.asarray(arr), values)
    if ref.ndim == 2:
        arr = arr[0]
    out = LabelMap.like(ref, arr, label_names=names)
    out.meta.update(path=str(path), format="dicom-seg", source=ref.meta.get("path"))
    return out


def _own_volume(seg: Any, path: Path) -> Any:
    """The SEG frames as a highdicom ``Volume``; gaps are filled only for foreign SEGs."""
    try:
        return seg.get_volume(combine_segments=True, relabel=False, allow_missing_positions=False)
    except (RuntimeError, ValueError, KeyError) as exc:
        # medseg writes every source slice, so a gap means an irregular source series.
        if str(seg.get("Manufacturer", "")) == "medseg":
            raise InputError(
                f"{path}: the source series has irregular slice positions and was not found "
                f"next to the SEG; pass reference= (the source series) ({exc})"
            ) from exc
    try:
        vol = seg.get_volume(combine_segments=True, relabel=False, allow_missing_positions=True)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise InputError(
            f"{path}: the SEG frames are not on a regular grid and its source series was not "
            f"found next to it; pass reference= (the source series) ({exc})"
        ) from exc
    log.warning(
        "%s: SEG omits empty slices and its source series is not here; rebuilt on the "
        "regular grid spanned by its frames (%d slices); pass reference= for the source grid",
        path, vol.shape[0],
    )  # fmt: skip
    return vol


def _on_own_grid(seg: Any, values: dict[int, int], names: dict[int, str], path: Path) -> LabelMap:
    vol = _own_volume(seg, path)
    affine = np.asarray(vol.affine, dtype=float)
    arr = np.asarray(vol.array)
    # highdicom affines map (slice, row, column) indices to LPS; medseg's direction columns
    # are the (column, row, slice) index axes, i.e. ITK's (x, y, z).
    cols = affine[:3, [2, 1, 0]]
    origin = affine[:3, 3]
    # medseg (like ITK) orders slices along row x column; highdicom may stack them reversed.
    if np.dot(np.cross(cols[:, 0], cols[:, 1]), cols[:, 2]) < 0:
        origin = origin + (arr.shape[0] - 1) * cols[:, 2]
        cols[:, 2] = -cols[:, 2]
        arr = arr[::-1]
    spacing_xyz = np.linalg.norm(cols, axis=0)
    return LabelMap(
        array=_lookup(np.ascontiguousarray(arr), values),
        spacing=tuple(spacing_xyz[::-1]),
        origin=tuple(origin),
        direction=cols / spacing_xyz[None, :],
        modality="SEG",
        meta={"path": str(path), "format": "dicom-seg", "series_uid": str(seg.SeriesInstanceUID)},
        label_names=names,
    )
