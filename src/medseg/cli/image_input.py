"""Image inputs of the CLI commands: a file, a DICOM folder, or a DICOMweb series URL.

``image_ref`` is the argparse ``type`` (a ``Path``, or the URL string as given: ``Path``
would fold its ``//``); ``load_input`` reads it, downloading a ``dicomweb://`` series into a
temporary folder that lives as long as the caller's ``ExitStack`` (the folder is the source
series of a DICOM-SEG output); ``push_seg`` stores the written DICOM-SEG back on the server.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path
from typing import Any

from medseg.errors import InputError

__all__ = ["image_ref", "load_input", "source_of", "check_push", "push_seg"]

log = logging.getLogger(__name__)


def image_ref(text: str) -> Path | str:
    """argparse type: ``dicomweb://`` / ``dicomwebs://`` URLs stay strings, else a ``Path``."""
    from medseg.io.dicomweb import is_dicomweb_url

    return text if is_dicomweb_url(text) else Path(text)


def load_input(args: argparse.Namespace, stack: contextlib.ExitStack, *, irregular: str) -> Any:
    """Read ``args.image``; a DICOMweb series is fetched (WADO-RS) into a folder removed when
    ``stack`` closes, and ``args.source_dir`` is set to it (else to ``args.image``)."""
    import medseg.io as mio
    from medseg.io.dicomweb import fetched_series, is_dicomweb_url

    if isinstance(args.image, str) and is_dicomweb_url(args.image):
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
    if not (isinstance(args.image, str) and "://" in args.image):
        raise InputError("--push stores the DICOM-SEG on the input's DICOMweb server: give a "
                         "dicomweb://host:port/prefix/studies/S/series/R input")  # fmt: skip
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
