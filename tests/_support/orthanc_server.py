"""A real Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``) as a child process for tests.

``orthanc(tmp)`` starts ``/usr/sbin/Orthanc CONFIG.json`` on a free loopback HTTP port
(DICOM server off, storage under ``tmp``, no authentication, loopback only, the DICOMweb
plugin at ``/dicom-web``), waits for ``/system`` and stops it when the block ends. Without
Orthanc it skips, unless ``MEDSEG_REQUIRE_ORTHANC`` is set (``.ci/run`` sets it where it
installed the packages); then it fails. The package's system service is never used.

``ct_series(folder)`` writes a small CT series with a bright square for the round trips.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

__all__ = ["ORTHANC", "DICOMWEB_PLUGIN", "Orthanc", "orthanc", "free_port", "ct_series"]

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


@dataclass(frozen=True)
class Orthanc:
    port: int
    storage: Path

    @property
    def root(self) -> str:
        """The DICOMweb root, ``http://127.0.0.1:PORT/dicom-web``."""
        return f"http://127.0.0.1:{self.port}/dicom-web"

    def dicomweb(self, study: str, series: str) -> str:
        return f"dicomweb://127.0.0.1:{self.port}/dicom-web/studies/{study}/series/{series}"

    def rest(self, path: str) -> object:
        """GET Orthanc's own REST API (JSON)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            return json.loads(r.read())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _require() -> None:
    missing = [str(p) for p in (ORTHANC, DICOMWEB_PLUGIN) if not p.exists()]
    if missing:
        if os.environ.get("MEDSEG_REQUIRE_ORTHANC"):
            pytest.fail(f"MEDSEG_REQUIRE_ORTHANC is set but {', '.join(missing)} is missing")
        pytest.skip(f"Orthanc is not installed ({', '.join(missing)} missing)")


@contextmanager
def orthanc(tmp: Path, startup_s: float = 30.0) -> Iterator[Orthanc]:
    """A running Orthanc with storage under ``tmp`` (see the module docstring)."""
    _require()
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {
        "Name": "medseg-tests",
        "StorageDirectory": str(tmp / "storage"),
        "IndexDirectory": str(tmp / "storage"),
        "HttpPort": port,
        "DicomServerEnabled": False,
        "DicomPort": free_port(),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "SaveJobs": False,
        "StorageCompression": False,
    }
    (tmp / "orthanc.json").write_text(json.dumps(config))
    log = (tmp / "orthanc.log").open("w")
    proc = subprocess.Popen(
        [str(ORTHANC), str(tmp / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT
    )
    server = Orthanc(port, tmp / "storage")
    try:
        deadline = time.monotonic() + startup_s
        while True:
            try:
                server.rest("/system")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(f"Orthanc did not start:\n{(tmp / 'orthanc.log').read_text()}")
                time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def ct_series(folder: Path, shape: tuple[int, int, int] = (4, 32, 40)) -> Path:
    """A CT series of ``shape`` (Z, Y, X) slices, 0.8 x 0.7 mm pixels, 2.5 mm apart, axial,
    at -1000 HU with a +300 HU square at ``[1:3, 10:20, 12:26]`` (one file per slice)."""
    from synthetic_dicom import write_series

    s = write_series(folder, shape=shape, spacing=(2.5, 0.7, 0.8),
                     iop=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), description="square")  # fmt: skip
    import pydicom

    for k, f in enumerate(s.files):
        ds = pydicom.dcmread(f)
        arr = np.full(shape[1:], 24, np.int16)  # stored 24 = -1000 HU (intercept -1024)
        if k in (1, 2):
            arr[10:20, 12:26] = 1324  # +300 HU
        ds.PixelData = arr.tobytes()
        ds.save_as(f, enforce_file_format=True)
    return folder


SQUARE = (slice(1, 3), slice(10, 20), slice(12, 26))
