"""Detached data files of NRRD (``data file:``) and MetaImage (``ElementDataFile =``) headers.

A ``.nhdr``/``.mhd`` header names the file that holds its pixels, and SimpleITK opens
whatever it names: ``ElementDataFile = /etc/passwd`` reads that file as pixels. medseg
reads a data file only when it lies inside the header's own folder (subfolders allowed,
symlinks resolved): ``check_data_files`` raises ``InputError`` naming the header and the
field otherwise. A single uploaded file never needs another file, so the server refuses
every reference (``detached_refs``).

The header is scanned as text (at most ``MAX_HEADER_BYTES``) a little more widely than
ITK parses it, so that anything ITK would follow is seen:

- MetaImage: every ``ElementDataFile`` key (any case) up to the first one ITK reads (exact
  case; it ends the header), separated from its value by ``=`` or ``:`` after any
  whitespace, newlines included. ``LOCAL`` (any case) means the pixels follow in the file.
- NRRD: every ``data file:`` / ``datafile:`` line (any case, not ``#`` comments) up to the
  blank line that ends the header.

Values are checked as one file name; ``LIST`` values also check the names on the lines
after them, and ``%`` patterns (``slice%03d.raw 1 40 1``) must have no folder part.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from medseg.errors import InputError

__all__ = ["MAX_HEADER_BYTES", "DataFileRef", "detached_refs", "check_data_files"]

#: How much of a header is scanned for data-file fields (real headers are < 10 KB).
MAX_HEADER_BYTES = 1 << 20

_MHA_KEY_ANY = re.compile(rb"ElementDataFile(?![A-Za-z0-9_])", re.IGNORECASE)
_MHA_KEY_ITK = re.compile(rb"ElementDataFile(?![A-Za-z0-9_])")
_MHA_VALUE = re.compile(rb"\s*[=:]([^\r\n]*)")
_NRRD_FIELD = re.compile(r"^\s*data\s*file\s*:(.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class DataFileRef:
    """One data-file field of a header.

    Attributes:
        field: the field as medseg names it (``"ElementDataFile"`` or ``"data file"``).
        value: its value as written (stripped).
        listed: the file names on the lines after a ``LIST`` value (else empty).
    """

    field: str
    value: str
    listed: tuple[str, ...] = ()


def _read_head(path: Path) -> tuple[bytes, bool]:
    """The first ``MAX_HEADER_BYTES`` of ``path`` and whether the file is longer."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(MAX_HEADER_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read header ({exc.strerror or exc})") from exc
    return head[:MAX_HEADER_BYTES], len(head) > MAX_HEADER_BYTES


def _text(raw: bytes) -> str:
    return raw.decode("latin-1").strip()


def _metaimage_refs(path: Path) -> list[DataFileRef]:
    head, longer = _read_head(path)
    itk = _MHA_KEY_ITK.search(head)
    if itk is None:
        if longer:
            raise InputError(
                f"{path}: no ElementDataFile in the first {MAX_HEADER_BYTES:,} bytes of the "
                "MetaImage header; refused"
            )
        return []  # ITK refuses a header without ElementDataFile itself
    value = _MHA_VALUE.match(head, itk.end())
    stop = value.end() if value else itk.end()
    refs = []
    for key in _MHA_KEY_ANY.finditer(head, 0, stop):
        found = _MHA_VALUE.match(head, key.end())
        text = _text(found.group(1)) if found else ""
        listed: tuple[str, ...] = ()
        if key.start() == itk.start() and text[:4].upper() == "LIST":
            if longer:
                raise InputError(
                    f"{path}: MetaImage file list longer than {MAX_HEADER_BYTES:,} bytes; refused"
                )
            listed = tuple(_text(head[stop:]).split())  # LIST: the names follow
        refs.append(DataFileRef("ElementDataFile", text, listed))
    return [r for r in refs if r.value.lower() != "local"]


def _nrrd_refs(path: Path) -> list[DataFileRef]:
    head, longer = _read_head(path)
    lines = head.split(b"\n")
    refs: list[DataFileRef] = []
    for i, raw in enumerate(lines):
        line = raw.rstrip(b"\r").decode("latin-1")
        if not line:
            return refs  # a blank line ends the header
        if i == len(lines) - 1 and longer:
            raise InputError(f"{path}: NRRD header longer than {MAX_HEADER_BYTES:,} bytes; refused")
        match = _NRRD_FIELD.match(line)
        if match is None or line.lstrip().startswith("#"):
            continue
        value = match.group(1).strip()
        listed: tuple[str, ...] = ()
        if value[:4].upper() == "LIST":  # the remaining lines are file names
            listed = tuple(t for t in (_text(x) for x in lines[i + 1 :]) if t)
        refs.append(DataFileRef("data file", value, listed))
        if listed:
            break
    return refs


def detached_refs(path: str | os.PathLike[str], fmt: str) -> list[DataFileRef]:
    """The data-file fields of a ``"nrrd"``/``"metaimage"`` header that name another file.

    Empty when the pixels are in the file itself (MetaImage ``ElementDataFile = LOCAL``,
    NRRD without ``data file``) and for every other format. Reads at most
    ``MAX_HEADER_BYTES``; raises ``InputError`` when the header is not over by then.
    """
    p = Path(path)
    if fmt == "metaimage":
        return _metaimage_refs(p)
    if fmt == "nrrd":
        return _nrrd_refs(p)
    return []


def _names(ref: DataFileRef) -> list[tuple[str, bool]]:
    """(file name, is a pattern) for everything ``ref`` may make ITK open."""
    names = [(ref.value, False), *((n, False) for n in ref.listed)]
    words = ref.value.split()
    if words and "%" in words[0]:
        names.append((words[0], True))
    return names


def check_data_files(path: str | os.PathLike[str], fmt: str) -> None:
    """Raise ``InputError`` when a NRRD/MetaImage header names a data file outside its folder.

    Relative names are taken from the header's folder, as ITK does; the resolved file
    (symlinks followed) must lie inside that folder. ``%`` patterns may not contain a
    folder part at all. Other formats are not checked.
    """
    p = Path(os.path.abspath(path))
    folder = p.parent.resolve()
    for ref in detached_refs(p, fmt):
        for name, pattern in _names(ref):
            if "\0" in name:  # os.path would raise ValueError
                raise InputError(f"{p}: header field {ref.field} has a NUL byte; file is corrupt")
            if pattern:
                outside = "/" in name or "\\" in name
            else:
                outside = not (p.parent / name).resolve().is_relative_to(folder)
            if outside:
                shown = name if len(name) <= 120 else name[:117] + "..."
                raise InputError(
                    f"{p}: header field {ref.field} names the data file {shown!r}, which is "
                    "not inside the header's folder; refused (keep the data file next to "
                    "its header)"
                )
