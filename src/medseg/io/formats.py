"""File-format detection by extension (and by content for DICOM without an extension)."""

from __future__ import annotations

from pathlib import Path

from medseg.errors import InputError

__all__ = [
    "EXTENSIONS",
    "READ_FORMATS",
    "WRITE_FORMATS",
    "detect_format",
    "is_dicom_file",
]

# Extension -> format name. Longest suffixes are matched first (".nii.gz" before ".gz").
EXTENSIONS: dict[str, str] = {
    ".nii.gz": "nifti",
    ".nii": "nifti",
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
    ".mha": "metaimage",
    ".mhd": "metaimage",
    ".dcm": "dicom",
    ".dicom": "dicom",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".bmp": "bmp",
    ".npy": "npy",
    ".npz": "npz",
}

#: Formats ``load`` reads (``dicom`` also covers series folders).
READ_FORMATS: tuple[str, ...] = tuple(sorted(set(EXTENSIONS.values())))
#: Formats ``save`` writes (DICOM output is DICOM-SEG via ``save_dicom_seg``).
WRITE_FORMATS: tuple[str, ...] = tuple(f for f in READ_FORMATS if f != "dicom")


def is_dicom_file(path: Path) -> bool:
    """True when ``path`` starts like a DICOM Part 10 file (``DICM`` after the preamble).

    Hand-written because it is a 4-byte check; pydicom's full parser is much slower when
    scanning folders of unrelated files.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def detect_format(path: str | Path) -> str:
    """Format name of ``path`` (see ``READ_FORMATS``) from its extension.

    Folders are ``"dicom"`` (a DICOM series folder). Files without a known extension are
    ``"dicom"`` when their content starts like DICOM. Anything else raises ``InputError``.
    """
    p = Path(path)
    if p.is_dir():
        return "dicom"
    name = p.name.lower()
    for ext in sorted(EXTENSIONS, key=len, reverse=True):
        if name.endswith(ext):
            return EXTENSIONS[ext]
    if p.is_file() and is_dicom_file(p):
        return "dicom"
    known = ", ".join(sorted(EXTENSIONS))
    raise InputError(
        f"{p}: unknown file type {''.join(p.suffixes) or '(no extension)'!r}; "
        f"medseg reads {known} and DICOM folders"
    )
