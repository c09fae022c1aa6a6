"""A DICOMweb client (QIDO-RS, WADO-RS, STOW-RS) on ``dicomweb-client``, e.g. for Orthanc.

A series is named by a URL: ``dicomweb://host[:port]/prefix/studies/S/series/R`` (plain
HTTP; ``dicomwebs://`` for HTTPS), or ``http(s)://host[:port]/prefix`` (the DICOMweb root,
e.g. Orthanc's ``http://127.0.0.1:8042/dicom-web``) with the study/series UIDs passed
separately, or the same ``http(s)`` URL with ``/studies/S/series/R`` appended.

``fetch_series`` downloads a series (WADO-RS) into a folder and reads it with
``medseg.io.load``; ``push_instances`` stores datasets (a DICOM-SEG) with STOW-RS. Every
problem (an unknown study or series, a non-image series, a server that is down or answers
an error) raises ``InputError`` naming the URL, a server that cannot be reached (refused,
timed out, HTTP 502/503/504) the subclass ``DicomwebUnavailable`` (the annotation server
answers it with 503); downloaded files never outlive a failure.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from medseg.errors import InputError
from medseg.io.image import Image

__all__ = [
    "DicomwebUnavailable",
    "DicomwebRef",
    "DicomwebSeries",
    "is_dicomweb_url",
    "parse_dicomweb_url",
    "list_studies",
    "list_series",
    "download_series",
    "fetch_series",
    "fetched_series",
    "push_instances",
]

log = logging.getLogger(__name__)

_SCHEMES = {"dicomweb": "http", "dicomwebs": "https", "http": "http", "https": "https"}
_UNAVAILABLE = (502, 503, 504)


class DicomwebUnavailable(InputError):
    """The DICOMweb server cannot be reached or says it is unavailable (HTTP 502/503/504)."""


@dataclass(frozen=True)
class DicomwebRef:
    """A parsed DICOMweb reference: the server's DICOMweb root and optional UIDs."""

    base_url: str  # e.g. "http://127.0.0.1:8042/dicom-web"
    study_uid: str | None = None
    series_uid: str | None = None

    def __str__(self) -> str:
        out = self.base_url
        if self.study_uid:
            out += f"/studies/{self.study_uid}"
        if self.series_uid:
            out += f"/series/{self.series_uid}"
        return out


@dataclass(frozen=True)
class DicomwebSeries:
    """One series as QIDO-RS lists it."""

    study_uid: str
    series_uid: str
    modality: str
    description: str
    num_instances: int | None
    number: int | None


def is_dicomweb_url(text: str | os.PathLike[str]) -> bool:
    """True for ``dicomweb://`` and ``dicomwebs://`` references (not for plain paths)."""
    return isinstance(text, str) and text.split("://", 1)[0].lower() in ("dicomweb", "dicomwebs")


def parse_dicomweb_url(
    url: str | DicomwebRef, study_uid: str | None = None, series_uid: str | None = None
) -> DicomwebRef:
    """Split ``url`` into the DICOMweb root and the study/series UIDs (see the module
    docstring); ``study_uid`` / ``series_uid`` fill what the URL leaves out."""
    if isinstance(url, DicomwebRef):
        return DicomwebRef(url.base_url, study_uid or url.study_uid, series_uid or url.series_uid)
    parts = urlsplit(str(url))
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise InputError(
            f"{url}: not a DICOMweb URL (expected dicomweb://host[:port]/prefix/studies/"
            "STUDY/series/SERIES or http(s)://host[:port]/prefix)"
        )
    if parts.query or parts.fragment:
        raise InputError(f"{url}: a DICOMweb URL takes no query string or fragment")
    segments = [s for s in parts.path.split("/") if s]
    prefix, uids = segments, []
    if "studies" in segments:
        at = segments.index("studies")
        prefix, uids = segments[:at], segments[at + 1 :]
    study = series = None
    if uids:
        study = uids[0]
        if len(uids) == 3 and uids[1] == "series":
            series = uids[2]
        elif len(uids) != 1:
            raise InputError(
                f"{url}: expected .../studies/STUDY or .../studies/STUDY/series/SERIES after "
                f"the DICOMweb root, got /{'/'.join(['studies', *uids])}"
            )
    base = f"{scheme}://{parts.netloc}" + "".join(f"/{s}" for s in prefix)
    return DicomwebRef(base, study_uid or study, series_uid or series)


def _client(ref: DicomwebRef, timeout: float) -> Any:
    from dicomweb_client import DICOMwebClient

    client = DICOMwebClient(ref.base_url, timeout=timeout)
    client.set_http_retry_params(retry=False)
    return client


@contextlib.contextmanager
def _errors(ref: DicomwebRef, what: str) -> Iterator[None]:
    """Turn the HTTP client's exceptions into ``InputError`` naming the server and action."""
    import requests

    # ``retrying`` (under dicomweb-client) logs every failed attempt with a traceback; the
    # InputError below says it once.
    quiet = logging.getLogger("retrying")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        yield
    except requests.exceptions.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else "?"
        hint = " (not found)" if code == 404 else ""
        kind = DicomwebUnavailable if code in _UNAVAILABLE else InputError
        raise kind(f"{ref}: DICOMweb {what} failed: HTTP {code}{hint}") from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise DicomwebUnavailable(
            f"{ref.base_url}: cannot reach the DICOMweb server for {what} (is it running? {exc})"
        ) from exc
    except requests.exceptions.RequestException as exc:
        raise InputError(f"{ref}: DICOMweb {what} failed ({exc})") from exc
    finally:
        quiet.setLevel(level)


def _value(item: dict[str, Any], tag: str) -> Any:
    values = item.get(tag, {}).get("Value") or [None]
    value = values[0]
    if isinstance(value, dict):  # PN: {"Alphabetic": "..."}
        return value.get("Alphabetic")
    return value


def list_studies(url: str | DicomwebRef, *, timeout: float = 20.0) -> list[dict[str, Any]]:
    """QIDO-RS: the server's studies as dicts (``study_uid``, ``patient_id``,
    ``patient_name``, ``date``, ``description``), in the server's order."""
    ref = parse_dicomweb_url(url)
    with _errors(ref, "study search (QIDO-RS)"):
        found = _client(ref, timeout).search_for_studies(get_remaining=True)
    return [
        {
            "study_uid": str(_value(s, "0020000D") or ""),
            "patient_id": str(_value(s, "00100020") or ""),
            "patient_name": str(_value(s, "00100010") or ""),
            "date": str(_value(s, "00080020") or ""),
            "description": str(_value(s, "00081030") or ""),
        }
        for s in found
    ]


def list_series(
    url: str | DicomwebRef, study_uid: str | None = None, *, timeout: float = 20.0
) -> list[DicomwebSeries]:
    """QIDO-RS: the series of ``study_uid`` (or the URL's study; all studies when neither)."""
    ref = parse_dicomweb_url(url, study_uid)
    filters = {"SeriesInstanceUID": ref.series_uid} if ref.series_uid else None
    with _errors(ref, "series search (QIDO-RS)"):
        found = _client(ref, timeout).search_for_series(
            ref.study_uid, search_filters=filters, get_remaining=True
        )
    out = []
    for s in found:
        count, number = _value(s, "00201209"), _value(s, "00200011")
        out.append(
            DicomwebSeries(
                study_uid=str(_value(s, "0020000D") or ref.study_uid or ""),
                series_uid=str(_value(s, "0020000E") or ""),
                modality=str(_value(s, "00080060") or "unknown"),
                description=str(_value(s, "0008103E") or ""),
                num_instances=None if count is None else int(count),
                number=None if number is None else int(number),
            )
        )
    return out


def _check_series(ref: DicomwebRef, timeout: float) -> DicomwebSeries:
    """The QIDO-RS entry of the reference's series; ``InputError`` if unknown or no image."""
    from medseg.io.dicom import NON_IMAGE_MODALITIES

    if not ref.series_uid:
        raise InputError(f"{ref}: name a series (.../studies/STUDY/series/SERIES)")
    match = [s for s in list_series(ref, timeout=timeout) if s.series_uid == ref.series_uid]
    if not match:
        where = f"study {ref.study_uid}" if ref.study_uid else "the server"
        raise InputError(f"{ref}: no series {ref.series_uid} in {where} ({ref.base_url})")
    info = match[0]
    if info.modality.upper() in NON_IMAGE_MODALITIES:
        raise InputError(
            f"{ref}: series {info.series_uid} is a {info.modality} object, not an image "
            "series; name the image series it refers to"
        )
    return info


def _download(ref: DicomwebRef, info: DicomwebSeries, folder: Path, timeout: float) -> int:
    with _errors(ref, "series retrieval (WADO-RS)"):
        # Any transfer syntax: as stored, so the server never has to transcode (Orthanc
        # cannot transcode JPEG 2000 without a codec plugin and answers HTTP 500).
        datasets = _client(ref, timeout).retrieve_series(
            info.study_uid, info.series_uid, media_types=(("application/dicom", "*"),)
        )
    if not datasets:
        raise InputError(f"{ref}: the server returned no instances for the series")
    for i, ds in enumerate(datasets):
        ds.save_as(folder / f"{i:05d}.dcm", enforce_file_format=True)
    return len(datasets)


@contextlib.contextmanager
def fetched_series(
    url: str | DicomwebRef,
    study_uid: str | None = None,
    series_uid: str | None = None,
    *,
    irregular: str = "error",
    timeout: float = 60.0,
) -> Iterator[tuple[Image, Path]]:
    """Download a series into a temporary folder and yield ``(image, folder)``; the folder
    (the source series for ``save_dicom_seg``) is removed when the block ends."""
    folder = Path(tempfile.mkdtemp(prefix="medseg-dicomweb-"))
    try:
        image = fetch_series(
            url, study_uid, series_uid, folder, irregular=irregular, timeout=timeout
        )
        yield image, folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _empty_folder(folder: Path, who: str) -> bool:
    """Check that ``folder`` is new or an empty folder; True when it does not exist yet."""
    if not folder.exists():
        return True
    if not folder.is_dir() or any(folder.iterdir()):
        raise InputError(f"{folder}: not an empty folder; {who} needs a new or empty one")
    return False


def download_series(
    url: str | DicomwebRef,
    study_uid: str | None = None,
    series_uid: str | None = None,
    dest_dir: str | os.PathLike[str] = ".",
    *,
    timeout: float = 60.0,
) -> tuple[DicomwebRef, int]:
    """WADO-RS: download one image series (checked with QIDO-RS first) into ``dest_dir``, a
    new or empty folder, one ``.dcm`` file per instance, without decoding the pixels.

    Returns the series' full reference (root, study and series UID) and the number of
    files. On any error the downloaded files are removed (the folder too when this call
    created it).
    """
    ref = parse_dicomweb_url(url, study_uid, series_uid)
    folder = Path(dest_dir)
    created = _empty_folder(folder, "download_series")
    info = _check_series(ref, timeout)
    ref = DicomwebRef(ref.base_url, info.study_uid, info.series_uid)
    folder.mkdir(parents=True, exist_ok=True)
    ok = False
    try:
        count = _download(ref, info, folder, timeout)
        ok = True
    finally:
        if not ok:
            _remove(folder, whole=created)
    return ref, count


def fetch_series(
    url: str | DicomwebRef,
    study_uid: str | None = None,
    series_uid: str | None = None,
    dest_dir: str | os.PathLike[str] | None = None,
    *,
    irregular: str = "error",
    timeout: float = 60.0,
) -> Image:
    """WADO-RS: download one image series and read it with ``medseg.io.load``.

    Args:
        url: a series URL, or the DICOMweb root with ``study_uid``/``series_uid``.
        dest_dir: a new or empty folder that keeps the downloaded files (one ``.dcm`` per
            instance); default: a temporary folder removed before returning. On any error
            the downloaded files are removed in both cases.
        irregular: passed to ``load`` (``"mean"`` accepts irregular slice gaps).

    Returns:
        The series as an ``Image`` (``(Z, Y, X)``, or ``(H, W)`` for one slice) with
        ``meta["dicomweb"]`` = the series URL.
    """
    from medseg.io.readers import load

    keep = dest_dir is not None
    folder = Path(dest_dir) if keep else Path(tempfile.mkdtemp(prefix="medseg-dicomweb-"))
    created = not keep or _empty_folder(folder, "fetch_series")
    ok = False
    try:
        ref, count = download_series(url, study_uid, series_uid, folder, timeout=timeout)
        image = load(folder, series_uid=ref.series_uid, irregular=irregular)
        ok = True
    finally:
        if not (ok and keep):
            _remove(folder, whole=created)
    image.meta["dicomweb"] = str(ref)
    log.info("fetched %s: %d instance(s), shape %s", ref, count, image.shape)
    return image


def _remove(folder: Path, *, whole: bool) -> None:
    """Delete ``folder`` (``whole``) or just the files ``_download`` wrote into it."""
    if whole:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for f in folder.glob("*.dcm"):
        f.unlink(missing_ok=True)


def push_instances(
    url: str | DicomwebRef,
    datasets: Sequence[Any],
    *,
    timeout: float = 60.0,
) -> list[str]:
    """STOW-RS: store ``datasets`` (pydicom ``Dataset`` objects or DICOM file paths) on the
    server; returns the stored SOP Instance UIDs. ``InputError`` if any is refused."""
    import pydicom

    ref = parse_dicomweb_url(url)
    items = [
        ds if isinstance(ds, pydicom.Dataset) else pydicom.dcmread(Path(ds)) for ds in datasets
    ]
    if not items:
        raise InputError("push_instances: no datasets to store")
    with _errors(ref, "store (STOW-RS)"):
        answer = _client(ref, timeout).store_instances(items, ref.study_uid)
    failed = answer.get("FailedSOPSequence") if answer is not None else None
    if failed:
        reasons = ", ".join(
            f"{item.get('ReferencedSOPInstanceUID', '?')} (reason {item.get('FailureReason', '?')})"
            for item in failed
        )
        raise InputError(f"{ref.base_url}: the server refused {len(failed)} instance(s): {reasons}")
    stored = [str(ds.SOPInstanceUID) for ds in items]
    log.info("stored %d instance(s) on %s", len(stored), ref.base_url)
    return stored
