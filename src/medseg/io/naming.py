"""File-naming rules shared by every folder reader: image endings and nnU-Net channel suffixes.

One home for the rules that dataset readers, ``medseg auto predict``, ``medseg evaluate`` and
the benchmarks apply to file names:

- an ending is matched case-insensitively, longest first (``.nii.gz`` before ``.gz``);
- ``CASE_0000.nii.gz, CASE_0001.nii.gz`` are channels 0 and 1 of case ``CASE`` (nnU-Net's
  ``_CCCC`` suffix: an underscore and exactly four digits).

>>> split_ending("Case_0001.NII.GZ")
('Case_0001', '.NII.GZ')
>>> split_channel("Case_0001")
('Case', 1)
"""

from __future__ import annotations

import re
from pathlib import Path

from medseg.io.formats import EXTENSIONS

__all__ = ["DATASET_ENDINGS", "IMAGE_ENDINGS", "split_ending", "split_channel", "case_stem"]

#: Every ending ``medseg.load`` reads, longest first.
IMAGE_ENDINGS: tuple[str, ...] = tuple(sorted(EXTENSIONS, key=len, reverse=True))
#: Endings of an nnU-Net dataset's ``file_ending`` (one file per case and channel).
DATASET_ENDINGS: tuple[str, ...] = (
    ".nii.gz", ".nii", ".nrrd", ".mha", ".png", ".tif", ".tiff", ".bmp",
)  # fmt: skip

_CHANNEL_RE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


def split_ending(name: str, endings: tuple[str, ...] = IMAGE_ENDINGS) -> tuple[str, str] | None:
    """``(stem, ending)`` of a file name (the ending as written in ``name``), or None when
    ``name`` has none of ``endings`` (compared case-insensitively, longest first)."""
    lower = name.lower()
    for ending in sorted(endings, key=len, reverse=True):
        if lower.endswith(ending) and len(name) > len(ending):
            return name[: -len(ending)], name[-len(ending) :]
    return None


def split_channel(stem: str) -> tuple[str, int] | None:
    """``(case, channel)`` of an nnU-Net image stem ``CASE_CCCC``, or None without the suffix."""
    m = _CHANNEL_RE.match(stem)
    return None if m is None else (m["case"], int(m["channel"]))


def case_stem(path: str | Path, endings: tuple[str, ...] = IMAGE_ENDINGS) -> str:
    """Case name of a file: its name without a known image ending (``a.nii.gz`` -> ``a``;
    a name without one is returned unchanged)."""
    name = Path(path).name
    parts = split_ending(name, endings)
    return name if parts is None else parts[0]
