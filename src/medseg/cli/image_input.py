"""Image inputs of the CLI commands: a file, a DICOM folder, or a DICOMweb series URL.

``image_ref`` is the argparse ``type`` (a ``Path``, or the URL string as given: ``Path``
would fold its ``//``) and ``is_remote`` the one rule telling a DICOMweb series from a path;
``load_input`` reads an input, downloading a ``dicomweb://`` series into a temporary folder
that lives as long as the caller's ``ExitStack`` (the folder is the source series of a
DICOM-SEG output); ``push_seg`` stores the written DICOM-SEG back on the server.
``segment_remote`` is the whole round trip for ``medseg auto predict dicomweb://...``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medseg.errors import InputError

__all__ = [
    "image_ref", "is_remote", "push_needs_remote", "load_input", "source_of", "check_push",
    "push_seg", "segment_remote",
]  # fmt: skip

log = logging.getLogger(__name__)


def image_ref(text: str) -> Path | str:
    """argparse type: ``dicomweb://`` / ``dicomwebs://`` URLs stay strings, else a ``Path``."""
    return text if is_remote(text) else Path(text)


def is_remote(ref: Any) -> bool:
    """True for a DICOMweb series reference (a ``dicomweb://`` / ``dicomwebs://`` string)."""
    from medseg.io.dicomweb import is_dicomweb_url

    return isinstance(ref, str) and is_dicomweb_url(ref)


def load_input(args: argparse.Namespace, stack: contextlib.ExitStack, *, irregular: str) -> Any:
    """Read ``args.image``; a DICOMweb series is fetched (WADO-RS) into a folder removed when
    ``stack`` closes, and ``args.source_dir`` is set to it (else to ``args.image``)."""
    import medseg.io as mio
    from medseg.io.dicomweb import fetched_series

    if is_remote(args.image):
        image, folder = stack.enter_context(fetched_series(args.image, irregular=irregular))
        args.source_dir = folder
        return image
    args.source_dir = args.image
    return mio.load(args.image, irregular=irregular)


def source_of(args: argparse.Namespace) -> Any:
    """The DICOM source (folder or file) of a DICOM-SEG output."""
    return getattr(args, "source_dir", None) or args.image


def check_push(args: argparse.Namespace, out: Path) -> None:
    """``--push`` needs a DICOMweb input and a DICOM-SEG (``.dcm``) output; checked before
    the model runs."""
    if not getattr(args, "push", False):
        return
    push_needs_remote(args.image)
    if out.suffix.lower() != ".dcm":
        raise InputError(f"--push stores a DICOM-SEG: the output must be a .dcm file, not {out}")


def push_seg(args: argparse.Namespace, out: Path) -> str | None:
    """STOW-RS the written DICOM-SEG ``out`` to the input's server when ``--push`` is given;
    returns the server's DICOMweb root (``None`` without ``--push``)."""
    if not getattr(args, "push", False):
        return None
    from medseg.io.dicomweb import parse_dicomweb_url, push_instances

    ref = parse_dicomweb_url(args.image)
    push_instances(ref, [out])
    return ref.base_url


def push_needs_remote(ref: Any) -> None:
    """``--push`` stores on the input's server: ``InputError`` unless ``ref`` is remote."""
    if not is_remote(ref):
        raise InputError("--push stores the DICOM-SEG on the input's DICOMweb server: give a "
                         "dicomweb://host:port/prefix/studies/S/series/R input")  # fmt: skip


def segment_remote(
    ref: str, out: Path, segment: Callable[[Any], Any], *, push: bool = False
) -> tuple[Path, str | None]:
    """Fetch the DICOMweb series ``ref`` (WADO-RS, into a temporary folder), segment it and
    write the label map as a DICOM-SEG that references the series, then store that on the
    server (STOW-RS) with ``push``.

    Args:
        ref: ``dicomweb://host:port/prefix/studies/S/series/R``.
        out: the ``.dcm`` file to write, or a folder (then ``out/<SeriesInstanceUID>.dcm``).
        segment: ``Image`` -> ``LabelMap`` on the image's grid (``(Z, Y, X)`` or ``(H, W)``).

    Returns:
        (the DICOM-SEG written, the server's DICOMweb root when pushed, else None).
    """
    from medseg.io.dicomseg import save_dicom_seg
    from medseg.io.dicomweb import fetched_series, parse_dicomweb_url, push_instances

    parsed = parse_dicomweb_url(ref)
    if not parsed.series_uid:
        raise InputError(f"{ref}: name a series (.../studies/STUDY/series/SERIES)")
    target = out if out.suffix.lower() == ".dcm" else out / f"{parsed.series_uid}.dcm"
    with fetched_series(ref) as (image, folder):
        labels = segment(image)
        save_dicom_seg(labels, folder, target, series_uid=parsed.series_uid)
    log.info("wrote DICOM-SEG %s of %s", target, ref)
    if not push:
        return target, None
    push_instances(parsed, [target])
    return target, parsed.base_url
