"""DICOM-SEG export with highdicom (import: :mod:`medseg.io.dicomseg_read`).

``save_dicom_seg`` writes a BINARY Segmentation that references its source series: one
segment per non-zero label value (segment label = the label name), the original label value
recorded in each segment's SegmentDescription (``"label value N"``), and one frame per
source slice and segment (empty frames are kept, so the SEG spans the full source grid).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.io.image import Image, LabelMap

__all__ = ["save_dicom_seg", "stable_uid", "SEG_SOP_CLASS"]

log = logging.getLogger(__name__)

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


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


def _fixed_attributes() -> dict[str, Any]:
    """The SEG's fixed attributes (``highdicom.seg.Segmentation`` keywords): series and
    instance numbers, manufacturer, software version, content label and descriptions."""
    from medseg._version import __version__

    return {
        "series_number": 900,
        "instance_number": 1,
        "manufacturer": "medseg",
        "manufacturer_model_name": "medseg",
        "software_versions": __version__,
        "device_serial_number": "0",
        "content_label": "MEDSEG",
        "content_description": "medseg segmentation",
        "series_description": "medseg segmentation",
    }


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
        sop_instance_uid=hd.UID(),
        omit_empty_frames=False,
        **_fixed_attributes(),
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
