"""Bounded memory for the "huge image" rows of issue 17's table, measured, not timed.

Each file is a few hundred bytes whose header claims a huge image (a PNG bomb, NIfTI,
NPY, TIFF, NRRD, MetaImage and DICOM headers lying about their size). The reader (``medseg
info``), ``medseg segment`` and the server run on it in a child process; the child's peak
RSS (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``, read by a small wrapper process so
that no earlier child of pytest counts) must stay within ``_SLACK_KIB`` of the same command
on a small valid file of that format, and the error must name the problem.
"""

from __future__ import annotations

import gzip
import json
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from synthetic_dicom import ct_dataset  # tests/_support

pytestmark = pytest.mark.slow  # two child processes per case

# What a refused file may cost beyond the same command on a small valid file; decoding
# any of these would take 500 MB (the smallest, 1024 x 1024 x 480 uint8) to terabytes.
_SLACK_KIB = 48 * 1024
_MEASURE = """
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
sys.stdout.write(f"{r.returncode} {peak}\\n{r.stdout}{r.stderr}")
"""


def _png(path: Path, width: int, height: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray
    rows = height * (width + 1)  # a filter byte per row
    idat = zlib.compress(b"\0" * (rows if rows < 10**6 else 64))  # huge: a few rows only
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))  # fmt: skip
    return path


def _nifti_gz(path: Path, shape: tuple[int, ...]) -> Path:
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_dtype(np.uint8)
    header.set_data_shape(shape)
    path.write_bytes(gzip.compress(header.binaryblock + b"\0" * 1028))
    return path


def _npy(path: Path, shape: tuple[int, ...]) -> Path:
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f4", "fortran_order": False, "shape": shape}
        )
        fh.write(b"\0" * 64)
    return path


def _tiff(path: Path, width: int, height: int) -> Path:
    """Little-endian TIFF, one uncompressed 8-bit strip (whose bytes are missing)."""
    tags = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1),
            (262, 3, 1, 1), (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, height),
            (279, 4, 1, (width * height) & 0xFFFFFFFF)]  # fmt: skip
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", *t) for t in tags)
    path.write_bytes(b"II*\0" + struct.pack("<I", 72) + b"\0" * 64 + ifd + b"\0" * 4)
    return path


def _nrrd(path: Path, sizes: str) -> Path:
    head = f"NRRD0004\ntype: uint8\ndimension: 3\nsizes: {sizes}\nencoding: raw\n\n"
    path.write_bytes(head.encode() + b"\0" * 64)
    return path


def _mha(path: Path, sizes: str) -> Path:
    head = (f"ObjectType = Image\nNDims = 3\nDimSize = {sizes}\nElementType = MET_UCHAR\n"
            "ElementDataFile = LOCAL\n")  # fmt: skip
    path.write_bytes(head.encode() + b"\0" * 64)
    return path


def _dicom(path: Path, rows: int, cols: int, frames: int) -> Path:
    ds = ct_dataset(path)
    ds.Modality, ds.Rows, ds.Columns = "CT", rows, cols
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = b"\0" * (2 * rows * cols * frames if rows * cols * frames < 1000 else 64)
    ds.save_as(path, enforce_file_format=True)
    return path


_PIXELS = r"is larger than the limit of 100,000,000 pixels \(max_pixels\); refused before decoding"
_VOXELS = r"is larger than the limit of 400,000,000 voxels \(max_voxels\); refused before decoding"
# (name, huge file, small valid file of the same format, expected error)
CASES = [
    ("png-bomb-60000", lambda d: _png(d / "bomb.png", 60000, 60000),
     lambda d: _png(d / "ok.png", 16, 12), r"bomb\.png: image is too large to decode safely"),
    ("png-12000", lambda d: _png(d / "big.png", 12000, 12000),
     lambda d: _png(d / "ok.png", 16, 12),
     r"big\.png: 2D image of size 12000 x 12000 \(144,000,000 pixels\) " + _PIXELS),
    ("nifti-1024x1024x480", lambda d: _nifti_gz(d / "big.nii.gz", (1024, 1024, 480)),
     lambda d: _nifti_gz(d / "ok.nii.gz", (1, 1, 1)),
     r"volume of size 480 x 1024 x 1024 \(503,316,480 voxels\) " + _VOXELS),
    ("nifti-629M", lambda d: _nifti_gz(d / "big.nii.gz", (1024, 1024, 600)),
     lambda d: _nifti_gz(d / "ok.nii.gz", (1, 1, 1)),
     r"volume of size 600 x 1024 x 1024 \(629,145,600 voxels\) " + _VOXELS),
    ("npy", lambda d: _npy(d / "big.npy", (20000, 20000, 10)),
     lambda d: _npy(d / "ok.npy", (4, 4)),
     r"volume of size 20000 x 20000 x 10 \(4,000,000,000 voxels\) " + _VOXELS),
    ("tiff", lambda d: _tiff(d / "big.tif", 60000, 60000), lambda d: _tiff(d / "ok.tif", 8, 8),
     r"2D image of size 60000 x 60000 \(3,600,000,000 pixels\) " + _PIXELS),
    ("nrrd", lambda d: _nrrd(d / "big.nrrd", "2000 2000 2000"),
     lambda d: _nrrd(d / "ok.nrrd", "4 4 4"),
     r"volume of size 2000 x 2000 x 2000 \(8,000,000,000 voxels\) " + _VOXELS),
    ("metaimage", lambda d: _mha(d / "big.mha", "2000 2000 2000"),
     lambda d: _mha(d / "ok.mha", "4 4 4"),
     r"volume of size 2000 x 2000 x 2000 \(8,000,000,000 voxels\) " + _VOXELS),
    ("dicom", lambda d: _dicom(d / "big.dcm", 65535, 65535, 500),
     lambda d: _dicom(d / "ok.dcm", 4, 4, 1),
     r"volume of size 500 x 65535 x 65535 \(2,147,418,112,500 voxels\) " + _VOXELS),
]  # fmt: skip


def _peak(cmd: list[str], cwd: Path) -> tuple[int, int, str]:
    """(exit status, peak RSS in KiB, output) of ``cmd`` run in a fresh child."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], capture_output=True,
                         text=True, timeout=300, cwd=cwd, check=True).stdout  # fmt: skip
    head, _, text = out.partition("\n")
    rc, peak = (int(v) for v in head.split())
    return rc, peak, text


def _medseg(*args: str) -> list[str]:
    return [sys.executable, "-m", "medseg", *args]


@pytest.mark.parametrize(("name", "huge", "small", "message"), CASES, ids=[c[0] for c in CASES])
def test_reader_refuses_a_huge_header_in_bounded_memory(
    tmp_path: Path, name: str, huge, small, message: str
) -> None:
    ok_rc, ok_peak, ok_text = _peak(_medseg("info", str(small(tmp_path))), tmp_path)
    assert ok_rc == 0, ok_text  # the small file of the same format is readable
    rc, peak, text = _peak(_medseg("info", str(huge(tmp_path))), tmp_path)
    assert rc == 2 and "Traceback" not in text
    assert text.count("\n") == 1 and text.startswith("medseg info: error: ")
    assert re.search(message, text), text
    assert peak <= ok_peak + _SLACK_KIB, (name, peak, ok_peak)


@pytest.mark.parametrize("name", ["png-bomb-60000", "png-12000", "nifti-629M"])
def test_segment_refuses_before_decoding(tmp_path: Path, name: str) -> None:
    _, huge, small, message = next(c for c in CASES if c[0] == name)
    box = "1,1,3,3"
    ok = small(tmp_path)
    _, ok_peak, _ = _peak(_medseg("info", str(ok)), tmp_path)
    path = huge(tmp_path)
    rc, peak, text = _peak(_medseg("segment", str(path), "-o", "out.png", "--box", box), tmp_path)
    assert rc == 2 and "Traceback" not in text and text.startswith("medseg segment: error: ")
    assert re.search(message, text), text
    assert peak <= ok_peak + _SLACK_KIB, (name, peak, ok_peak)
    assert not (tmp_path / "out.png").exists()


_SERVER = """
import http.client, json, socket, sys, threading, time
import numpy as np
import uvicorn
from medseg.models.base import Decoded, PromptableModel
from medseg.server.app import create_app
from medseg.server.config import ServerConfig

class Box(PromptableModel):
    name = "box"
    prompt_kinds = frozenset({"box"})
    def encode(self, image):
        return np.asarray(image, np.float32)
    def decode(self, embedding, prompts, *, multimask=False):
        shape = embedding.shape[:2]
        return Decoded(np.zeros((1, 1, *shape), np.float32), np.ones((1, 1), np.float32))

app = create_app(ServerConfig(data_dir=sys.argv[1], warmup=False), model=Box())
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
sock.bind(("127.0.0.1", 0))
port = sock.getsockname()[1]
server = uvicorn.Server(uvicorn.Config(app, log_level="error", access_log=False))
threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
while not server.started:
    time.sleep(0.05)
auth = {"Authorization": f"Bearer {app.state.medseg.token}"}

def call(method, url, body=None, **headers):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    chunked = body is not None and not isinstance(body, bytes)
    conn.request(method, url, body=body, headers={**auth, **headers}, encode_chunked=chunked)
    r = conn.getresponse()
    out = r.status, json.loads(r.read() or b"null")
    conn.close()
    return out

out = {}
images = call("GET", "/api/images")[1]
for image in images:
    status, body = call("POST", "/api/sessions", json.dumps({"image_id": image["id"]}).encode(),
                        **{"Content-Type": "application/json"})
    out[image["name"]] = [status, body.get("detail")]
ok = next(i["id"] for i in images if i["name"] == "ok.png")
def body():
    yield b'{"labels": [], "data": {"encoding": "rle", "shape": [12, 16], "values": ['
    for _ in range(100):
        yield b"0, " * (1 << 18)  # 100 MB of RLE values, streamed (chunked, no Content-Length)
if sys.argv[2] == "huge":
    status, detail = call("POST", f"/api/images/{ok}/labels", body(),
                          **{"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    out["label body"] = [status, detail["detail"]]
server.should_exit = True
print(json.dumps(out))
"""


def test_server_refuses_huge_images_and_label_bodies_in_bounded_memory(tmp_path: Path) -> None:
    """Rows "12000 x 12000 PNG then a session", "74-byte PNG bomb", "1024 x 1024 x 480
    .nii.gz", "629 M-voxel .nii.gz" and "100 MB JSON label body", through the server."""
    reference = tmp_path / "reference"  # the same server on one small image
    reference.mkdir()
    _png(reference / "ok.png", 16, 12)
    store = tmp_path / "store"
    store.mkdir()
    for name in ("png-bomb-60000", "png-12000", "nifti-1024x1024x480"):
        next(c for c in CASES if c[0] == name)[1](store)
    _png(store / "ok.png", 16, 12)
    (store / "big.nii.gz").rename(store / "vol480.nii.gz")
    _nifti_gz(store / "vol600.nii.gz", (1024, 1024, 600))
    script = tmp_path / "server.py"
    script.write_text(_SERVER)
    ref_rc, ref_peak, ref_text = _peak([sys.executable, str(script), str(reference), "-"],
                                       tmp_path)  # fmt: skip
    assert ref_rc == 0 and json.loads(ref_text.strip().splitlines()[-1]) == {"ok.png": [201, None]}
    rc, peak, text = _peak([sys.executable, str(script), str(store), "huge"], tmp_path)
    assert rc == 0, text
    got = json.loads(text.strip().splitlines()[-1])
    assert got["bomb.png"][0] == 400 and "bomb.png: image is too large" in got["bomb.png"][1]
    assert got["big.png"][0] == 400 and "12000 x 12000 (144,000,000 pixels)" in got["big.png"][1]
    assert got["vol480.nii.gz"][0] == 400 and "503,316,480 voxels" in got["vol480.nii.gz"][1]
    assert got["vol600.nii.gz"][0] == 400 and "629,145,600 voxels" in got["vol600.nii.gz"][1]
    assert got["ok.png"][0] == 201
    assert got["label body"] == [413, "label body larger than the 265,216 bytes a label map of "
                                 "this 12 x 16 image can take (16 per voxel + 262,144); "
                                 "refused before parsing it"]  # fmt: skip
    assert peak <= ref_peak + _SLACK_KIB, (peak, ref_peak)
