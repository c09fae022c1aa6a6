"""DICOM-SEG export and import with highdicom.

``save_dicom_seg`` writes a BINARY Segmentation that references its source series: one
segment per non-zero label value (segment label = the label name), the original label value
recorded in each segment's SegmentDescription (``"label value N"``), and one frame per
source slice and segment (empty frames are kept, so the SEG spans the full source grid).

``load_dicom_seg`` rebuilds a ``LabelMap``: on the grid of ``reference`` (the source
``Image`` or its folder) when given, else on the referenced series when it lies in the SEG's
folder or a sibling folder, else on the regular grid that the SEG frames describe.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.io.image import Image, LabelMap

__all__ = ["save_dicom_seg", "load_dicom_seg", "find_seg", "SEG_SOP_CLASS"]

log = logging.getLogger(__name__)

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
_VALUE_RE = re.compile(r"label value (\d+)")


def _source_datasets(source: Image) -> list[Any]:
    import pydicom

    files = source.meta.get("files") or [source.meta.get("path")]
    if source.meta.get("format") != "dicom" or not files or files[0] is None:
        raise InputError(f"{source.meta.get('path')}: DICOM-SEG needs a DICOM source series")
    if "frame_axis" in source.meta or "frame_order" in source.meta:
        raise InputError(f"{files[0]}: multi-frame sources are not supported for DICOM-SEG")
    if source.ndim == 3 and len(files) != source.shape[0]:
        raise InputError(
            f"{source.meta.get('path')}: DICOM-SEG export needs one file per slice "
            f"(got {len(files)} file(s) for {source.shape[0]} slices)"
        )
    datasets = [_with_sop_uids(pydicom.dcmread(f, stop_before_pixels=True), f) for f in files]
    return _with_series_uids(datasets, source.meta.get("path") or files[0])


def stable_uid(kind: str, sop_instance_uids: list[str]) -> str:
    """A UID derived from a series' SOP Instance UIDs (order-independent): the same series
    always gets the same ``kind`` ("study" or "series") UID, on every slice and every run."""
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["medseg", kind, *sorted(sop_instance_uids)]))


def _with_series_uids(datasets: list[Any], where: Any) -> list[Any]:
    """Fill a blank StudyInstanceUID / SeriesInstanceUID (anonymised exports, e.g.
    TotalSegmentator's example series) with ``stable_uid``, the same on every slice, so the
    SEG references a real series; a warning says so. The files on disk are not changed."""
    sops = [str(ds.SOPInstanceUID) for ds in datasets]
    for tag, kind in (("StudyInstanceUID", "study"), ("SeriesInstanceUID", "series")):
        blank = [ds for ds in datasets if not str(ds.get(tag, "") or "").strip()]
        if not blank:
            continue
        given = {str(ds.get(tag)) for ds in datasets if str(ds.get(tag, "") or "").strip()}
        uid, how = (given.pop(), "the other slices'") if len(given) == 1 else (None, "generated")
        uid = uid or stable_uid(kind, sops)
        for ds in blank:
            setattr(ds, tag, uid)
        log.warning(
            "%s: %d of %d source file(s) have no %s; the DICOM-SEG uses the %s UID %s",
            where, len(blank), len(datasets), tag, how, uid,
        )  # fmt: skip
    return datasets


def _with_sop_uids(ds: Any, path: Any) -> Any:
    """Fill an empty SOP Class/Instance UID from the file meta header (seen in anonymised
    exports, e.g. TotalSegmentator's example series); the file on disk is not changed."""
    meta = getattr(ds, "file_meta", None)
    for tag, meta_tag in (
        ("SOPClassUID", "MediaStorageSOPClassUID"),
        ("SOPInstanceUID", "MediaStorageSOPInstanceUID"),
    ):
        if not str(ds.get(tag, "") or ""):
            value = str(meta.get(meta_tag, "") or "") if meta is not None else ""
            if not value:
                raise InputError(f"{path}: no {tag} in the dataset or its file meta header")
            setattr(ds, tag, value)
    return ds


def _segment_descriptions(values: list[int], names: dict[int, str]) -> list[Any]:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from medseg._version import __version__

    algorithm = hd.AlgorithmIdentificationSequence(
        name="medseg", family=codes.cid7162.ArtificialIntelligence, version=__version__
    )
    out = []
    for number, value in enumerate(values, start=1):
        desc = hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=names.get(value) or f"label {value}",
            segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=codes.SCT.AnatomicalStructure,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
            algorithm_identification=algorithm,
        )
        desc.SegmentDescription = f"label value {value}"
        out.append(desc)
    return out


def save_dicom_seg(
    labels: LabelMap | np.ndarray,
    source_series_dir: str | os.PathLike[str],
    path: str | os.PathLike[str],
    label_names: dict[int, str] | None = None,
    *,
    series_uid: str | None = None,
    irregular: str = "error",
) -> Path:
    """Write ``labels`` as a DICOM-SEG that references the series in ``source_series_dir``.

    Args:
        labels: label map on the source grid: ``(Z, Y, X)`` for a series (slices in the order
            ``load(source_series_dir)`` returns), ``(H, W)`` for a single-slice DICOM file.
            A ``LabelMap`` must have the source's geometry; a bare array is taken as on it.
        source_series_dir: the source DICOM series folder (or a single-frame DICOM file).
        path: output ``.dcm`` file (written atomically).
        label_names: names per label value (default: ``labels.label_names``, else
            ``"label N"``).
        series_uid: which series of the folder is the source (default: the largest).
        irregular: ``"mean"`` accepts a source series with irregular slice positions (the
            label map must then be on the mean-gap grid ``load(..., irregular="mean")``
            gives; the SEG frames still refer to the real source slices).
    """
    import highdicom as hd

    from medseg._version import __version__
    from medseg.io.atomic import atomic_path
    from medseg.io.readers import load

    source = load(source_series_dir, series_uid=series_uid, irregular=irregular)
    if source.channels:
        raise InputError(f"{source_series_dir}: colour images cannot be DICOM-SEG sources")
    lab = _on_source_grid(labels, source)
    values = lab.labels
    if not values:
        raise InputError("label map is empty: DICOM-SEG needs at least one non-zero label")
    names = {**lab.label_names, **(label_names or {})}
    arr = lab.array if lab.ndim == 3 else lab.array[None]
    onehot = np.stack([arr == v for v in values], axis=-1)
    seg = hd.seg.Segmentation(
        source_images=_source_datasets(source),
        pixel_array=onehot,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=_segment_descriptions(values, names),
        series_instance_uid=hd.UID(),
        series_number=900,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="medseg",
        manufacturer_model_name="medseg",
        software_versions=__version__,
        device_serial_number="0",
        content_label="MEDSEG",
        content_description="medseg segmentation",
        series_description="medseg segmentation",
        omit_empty_frames=False,
    )
    out = Path(path).expanduser()
    with atomic_path(out) as tmp:
        seg.save_as(tmp)
    log.info("wrote DICOM-SEG %s: %d segment(s) on %s", out, len(values), source_series_dir)
    return out


def _on_source_grid(labels: LabelMap | np.ndarray, source: Image) -> LabelMap:
    if not isinstance(labels, LabelMap):
        return LabelMap.like(source, np.asarray(labels))
    if not labels.same_geometry(source, atol=1e-3):
        raise InputError(
            f"label map grid (shape {labels.shape}, spacing {labels.spacing}, origin "
            f"{labels.origin}) differs from the source series grid (shape {source.shape}, "
            f"spacing {source.spacing}, origin {source.origin}); resample the labels first"
        )
    return labels


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
