"""``save``: write an ``Image``, ``LabelMap`` or bare array; format from the extension.

Every file goes through ``atomic_path`` (temporary file, then rename), so a failed save
leaves no partial file and never clobbers an existing one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from medseg.errors import InputError
from medseg.io.atomic import atomic_path
from medseg.io.formats import detect_format
from medseg.io.image import Image, LabelMap

__all__ = ["save"]

log = logging.getLogger(__name__)


def _as_image(obj: Image | np.ndarray, path: Path) -> Image:
    if isinstance(obj, Image):
        return obj
    if isinstance(obj, np.ndarray):
        # Same rule as reading .npy: (H, W, 3|4) uint8 is an RGB(A) picture, not a volume.
        rgb = obj.ndim == 3 and obj.shape[-1] in (3, 4) and obj.dtype == np.uint8
        try:
            return Image(array=obj, channels=rgb, modality="RGB" if rgb else "unknown")
        except InputError as exc:
            raise InputError(f"{path.name}: {exc}") from exc
    raise InputError(f"{path.name}: save needs an Image, LabelMap or numpy array, got {type(obj)}")


def save(obj: Image | LabelMap | np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` to ``path`` and return the path.

    Formats by extension: ``.nii``/``.nii.gz``, ``.nrrd``/``.nhdr``, ``.mha``/``.mhd`` (values,
    dtype and geometry kept), ``.png`` (2D uint8/uint16, or RGB uint8), ``.jpg``/``.bmp``
    (2D uint8), ``.tif``/``.tiff`` (2D or 3D, any numeric dtype, no geometry), ``.npy`` (array
    only), ``.npz`` (array + geometry). A bare array gets unit spacing, zero origin and
    identity direction; an ``(H, W, 3|4)`` uint8 array is an RGB(A) picture. DICOM output is
    DICOM-SEG, see ``save_dicom_seg``.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        raise InputError(f"{p}: is a folder; give a file name with an extension")
    fmt = _write_format(p)
    image = _as_image(obj, p)
    if fmt in ("nifti", "nrrd", "metaimage"):
        from medseg.io.volume import write_detached, write_volume

        if p.name.lower().endswith((".nhdr", ".mhd")):
            write_detached(image, p)
        else:
            with atomic_path(p) as tmp:
                write_volume(image, tmp, str(p))
    elif fmt in ("png", "jpeg", "bmp", "tiff"):
        from medseg.io.raster import write_raster

        with atomic_path(p) as tmp:
            write_raster(image, tmp, fmt, str(p))
    else:
        from medseg.io.arrays import write_array_file

        with atomic_path(p) as tmp:
            write_array_file(image, tmp, fmt)
    log.debug("wrote %s (%s %s)", p, image.array.shape, image.array.dtype)
    return p


def _write_format(p: Path) -> str:
    try:
        fmt = detect_format(p) if p.suffix else ""
    except InputError:
        fmt = ""
    if fmt in ("", "dicom"):
        raise InputError(
            f"{p}: cannot write {''.join(p.suffixes) or 'a file without extension'}; use .nii.gz, "
            ".nii, .nrrd, .nhdr, .mha, .mhd, .png, .jpg, .bmp, .tif, .npy or .npz "
            "(DICOM-SEG: save_dicom_seg)"
        )
    return fmt
