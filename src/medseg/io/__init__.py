"""Reading and writing medical images: one ``Image``/``LabelMap`` for every format.

``load`` / ``load_label`` read NIfTI, NRRD, MetaImage, DICOM (files, multi-frame, series
folders, DICOM-SEG), PNG/JPEG/BMP/TIFF and NumPy files; ``save`` writes them back by
extension (atomically); ``save_dicom_seg`` exports a label map as DICOM-SEG that refers to
its source series. Heavy libraries (SimpleITK, pydicom, highdicom) are imported only when a
function needs them, so ``import medseg.io`` stays light.
"""

from __future__ import annotations

from medseg.io.atomic import atomic_path
from medseg.io.dicom import DicomSeriesInfo, list_dicom_series
from medseg.io.dicomseg import save_dicom_seg
from medseg.io.formats import READ_FORMATS, WRITE_FORMATS, detect_format
from medseg.io.image import Image, LabelMap
from medseg.io.intensity import (
    CT_WINDOWS,
    CTWindow,
    apply_ct_window,
    display_window,
    minmax_normalize,
    percentile_normalize,
)
from medseg.io.overlay import render_overlay, save_overlay, to_display_rgb
from medseg.io.readers import load, load_label
from medseg.io.writers import save

__all__ = [
    "Image",
    "LabelMap",
    "load",
    "load_label",
    "save",
    "list_dicom_series",
    "DicomSeriesInfo",
    "save_dicom_seg",
    "detect_format",
    "READ_FORMATS",
    "WRITE_FORMATS",
    "atomic_path",
    "CT_WINDOWS",
    "CTWindow",
    "apply_ct_window",
    "percentile_normalize",
    "minmax_normalize",
    "display_window",
    "save_overlay",
    "render_overlay",
    "to_display_rgb",
]
