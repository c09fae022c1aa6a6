"""Built-in sample data that ships with installed packages (no download, no ../shared).

The sample CT is pydicom's bundled ``CT_small.dcm`` (128x128 axial CT slice, MIT licence),
which every medseg install has because pydicom is a dependency.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.io.image import Image

__all__ = ["sample_path", "sample_ct", "SAMPLE_CT_BOX"]

# A box (x0, y0, x1, y1) around the spinal canal in the sample slice (dark disc below the
# vertebral body), used by ``medseg demo`` and the web app's first screen.
SAMPLE_CT_BOX = (45, 40, 72, 63)


def sample_path(name: str = "CT_small.dcm") -> Path:
    """Path of a DICOM file bundled with pydicom."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:  # pragma: no cover - pydicom always ships CT_small.dcm
        raise FileNotFoundError(f"pydicom does not ship the sample {name!r}")
    return Path(path)


def sample_ct() -> Image:
    """The bundled CT slice as an ``Image`` in Hounsfield units, ``(H, W)`` = (128, 128)."""
    import pydicom

    path = sample_path()
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    sy, sx = (float(v) for v in ds.PixelSpacing)
    return Image(
        array=hu,
        spacing=(sy, sx),
        origin=tuple(float(v) for v in ds.ImagePositionPatient[:2]),
        modality=str(ds.Modality),
        meta={"path": str(path), "format": "dicom", "description": "pydicom CT_small.dcm"},
    )
