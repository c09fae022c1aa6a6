"""Fuzz every image reader of ``medseg.io`` with mutated copies of small valid files.

For ``--seconds`` (default 60) the script takes one small valid seed file per format (PNG,
JPEG, TIFF, NIfTI ``.nii``/``.nii.gz``, NRRD, MetaImage ``.mha``, DICOM, NPY; written with
medseg's own writers, numpy and pydicom into a temporary folder), mutates it (bit flips,
byte overwrites with extreme values, truncation, chunk insert/delete/duplicate, and edits of
header fields: binary integers in the first bytes, numbers in text headers) and calls
``medseg.io.limits.check_size`` and ``medseg.io.load`` on each mutant. An exception that is
one of ``medseg.errors``' classes is a clean refusal; any other exception (or a case that runs
past ``--case-timeout``) is a finding: the input is saved under ``--out`` (one file per
distinct exception type and raising line) and a summary table is printed::

    python benchmarks/fuzz_readers.py --seconds 120 --out fuzz_findings

Why plain random mutation and not atheris: atheris installs, but ``atheris.Fuzz()`` owns the
process (it runs until the first crash or libFuzzer's own time limit, one target per
process), while this script splits a time budget over nine formats, keeps going past
findings and counts clean errors per format; and the decoders that matter (Pillow, SimpleITK,
zlib, nibabel's numpy paths) are C code that atheris does not instrument, so its coverage
feedback would mostly see medseg's thin Python layer. Random mutation of valid seeds reaches
the same header paths. The run is reproducible with ``--seed``.

Memory is bounded with ``RLIMIT_AS`` (``--mem-mb``) and small ``SizeLimits`` so that a header
that claims a huge image must be refused before decoding; ``MemoryError`` is a finding.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import os
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from medseg.errors import MedsegError
from medseg.io import load, save
from medseg.io.formats import detect_format
from medseg.io.limits import SizeLimits, check_size

#: Small limits: legitimate mutants decode in little memory, absurd headers must be refused.
LIMITS = SizeLimits(max_pixels=4_000_000, max_voxels=16_000_000)
EXTREMES = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
TEXT_NUMBERS = ("0", "-1", "1", "65535", "99999999", "2147483648", "1e308", "nan", "-0", "")


class CaseTimeout(Exception):
    """A reader ran past ``--case-timeout`` seconds."""


def _write_dicom(path: Path, pixels: np.ndarray) -> None:
    """One small CT slice (int16, ExplicitVRLittleEndian) written with pydicom."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID, ds.InstanceNumber = "CT", "P1", 1
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = "1", "-1024"
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.ImagePositionPatient = ["0", "0", "0"]
    ds.PixelSpacing, ds.SliceThickness = ["0.7", "0.8"], "2.5"
    ds.PixelData = pixels.astype(np.int16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def make_seeds(folder: Path) -> dict[str, tuple[str, bytes]]:
    """Seed files by format label: ``{label: (suffix, bytes)}``, all a few KB at most."""
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 255, (12, 16), dtype=np.uint8)
    rgb = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    vol = rng.integers(-100, 400, (3, 8, 10), dtype=np.int16)
    writers: dict[str, tuple[str, Callable[[Path], object]]] = {
        "png": (".png", lambda p: save(gray, p)),
        "jpeg": (".jpg", lambda p: save(rgb, p)),
        "tiff": (".tif", lambda p: save(vol, p)),
        "nii": (".nii", lambda p: save(vol, p)),
        "nii.gz": (".nii.gz", lambda p: save(vol, p)),
        "nrrd": (".nrrd", lambda p: save(vol, p)),
        "mha": (".mha", lambda p: save(vol, p)),
        "dicom": (".dcm", lambda p: _write_dicom(p, vol[0])),
        "npy": (".npy", lambda p: np.save(p, vol)),
    }
    seeds = {}
    for label, (suffix, write) in writers.items():
        path = folder / f"seed{suffix}"
        write(path)
        seeds[label] = (suffix, path.read_bytes())
    return seeds


def _edit_binary_field(data: bytearray, rnd: random.Random) -> None:
    """Overwrite a 1/2/4/8-byte integer in the first 512 bytes with an extreme value."""
    width = rnd.choice((1, 2, 4, 8))
    pos = rnd.randrange(0, max(1, min(len(data), 512) - width + 1))
    value = rnd.choice(EXTREMES) & ((1 << (8 * width)) - 1)
    order = rnd.choice(("little", "big"))
    data[pos : pos + width] = value.to_bytes(width, order)


def _edit_text_field(data: bytearray, rnd: random.Random) -> bytearray:
    """Replace one number in a text header (NRRD, MetaImage, the NPY dict) by another."""
    head = bytes(data[:1024])
    numbers = list(re.finditer(rb"-?\d+(\.\d+)?", head))
    if not numbers:
        return data
    m = rnd.choice(numbers)
    new = rnd.choice(TEXT_NUMBERS).encode()
    return bytearray(bytes(data[: m.start()]) + new + bytes(data[m.end() :]))


def mutate(seed: bytes, rnd: random.Random) -> bytes:
    """One to three random mutations of ``seed``."""
    data = bytearray(seed)
    for _ in range(rnd.randint(1, 3)):
        kind = rnd.randrange(7)
        n = len(data)
        if n == 0:
            break
        if kind == 0:  # bit flips
            for _ in range(rnd.randint(1, 8)):
                i = rnd.randrange(n)
                data[i] ^= 1 << rnd.randrange(8)
        elif kind == 1:  # byte set to an extreme
            data[rnd.randrange(n)] = rnd.choice((0, 0x7F, 0x80, 0xFF))
        elif kind == 2:  # truncation
            data = data[: rnd.randrange(n)]
        elif kind == 3:  # delete a chunk
            i = rnd.randrange(n)
            del data[i : i + rnd.randint(1, 64)]
        elif kind == 4:  # duplicate / insert a chunk
            i, j = rnd.randrange(n), rnd.randrange(n)
            data[i:i] = data[j : j + rnd.randint(1, 64)]
        elif kind == 5:
            _edit_binary_field(data, rnd)
        else:
            data = _edit_text_field(data, rnd)
    return bytes(data)


@dataclass
class Stats:
    """Counts for one format."""

    cases: int = 0
    clean: int = 0
    loaded: int = 0
    findings: dict[str, int] = field(default_factory=dict)


def _signature(exc: BaseException) -> str:
    """``Type@file:line`` of the innermost frame: one saved input per distinct crash."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
    return f"{type(exc).__name__}@{where}"


def _on_alarm(signum: int, frame: object) -> None:
    raise CaseTimeout("reader ran past the case timeout")


def run_case(path: Path, timeout: float) -> BaseException | None:
    """Check the header size and load ``path``; returns the exception raised, if any."""
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        check_size(path, detect_format(path), LIMITS)
        load(path, limits=LIMITS)
    except Exception as exc:  # every exception is classified by the caller
        return exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return None


def _save_finding(out: Path, label: str, sig: str, suffix: str, data: bytes, text: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{label}-{sig}")
    (out / f"{name}{suffix}").write_bytes(data)
    (out / f"{name}.txt").write_text(text, encoding="utf-8")


def _load_stats(path: Path, labels: list[str]) -> dict[str, Stats]:
    raw = json.loads(path.read_text()) if path.exists() else {}
    return {label: Stats(**raw.get(label, {})) for label in labels}


def worker(state: Path, seconds: float, out: Path, seed: int, timeout: float) -> None:
    """The fuzz loop, round-robin over formats, for ``seconds``.

    Before each case the mutant is written to ``state/case<suffix>`` and its format to
    ``state/current.json``, and after it the counts to ``state/stats.json``, so that the
    parent can record a case that kills this process (a segfault in a C decoder).
    """
    rnd = random.Random(seed)
    seeds = make_seeds(state)
    stats = _load_stats(state / "stats.json", list(seeds))
    labels = list(seeds)
    deadline = time.monotonic() + seconds
    k = rnd.randrange(len(labels))
    while time.monotonic() < deadline:
        label = labels[k % len(labels)]
        k += 1
        suffix, seed_bytes = seeds[label]
        data = mutate(seed_bytes, rnd)
        case = state / f"case{suffix}"
        case.write_bytes(data)
        (state / "current.json").write_text(json.dumps({"label": label, "suffix": suffix}))
        exc = run_case(case, timeout)
        st = stats[label]
        st.cases += 1
        if exc is None:
            st.loaded += 1
        elif isinstance(exc, MedsegError):
            st.clean += 1
        else:
            sig = _signature(exc)
            if sig not in st.findings:
                text = "".join(traceback.format_exception(exc))
                _save_finding(out, label, sig, suffix, data, text)
            st.findings[sig] = st.findings.get(sig, 0) + 1
        (state / "current.json").unlink()
        (state / "stats.json").write_text(json.dumps({k: asdict(v) for k, v in stats.items()}))


def fuzz(seconds: float, out: Path, seed: int, timeout: float, mem_mb: int) -> dict[str, Stats]:
    """Run workers until ``seconds`` have passed, restarting one that a signal killed."""
    with tempfile.TemporaryDirectory(prefix="medseg-fuzz-") as tmp:
        state = Path(tmp)
        deadline = time.monotonic() + seconds
        restart = 0
        while (left := deadline - time.monotonic()) > 0.5:
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                str(state),
                "--seconds",
                f"{left:.1f}",
                "--out",
                str(out),
                "--seed",
                str(seed * 1000 + restart),
                "--case-timeout",
                str(timeout),
                "--mem-mb",
                str(mem_mb),
            ]
            try:
                rc = subprocess.run(cmd, check=False, timeout=left + timeout + 30).returncode
            except subprocess.TimeoutExpired:  # stuck in C code that SIGALRM cannot stop
                rc = -signal.SIGKILL
            restart += 1
            current = state / "current.json"
            if rc >= 0 or not current.exists():
                if rc != 0:
                    raise RuntimeError(f"fuzz worker failed with exit code {rc}")
                break
            info = json.loads(current.read_text())
            current.unlink()
            sig = f"{signal.Signals(-rc).name}"
            stats = _load_stats(state / "stats.json", [info["label"]])
            st = stats[info["label"]]
            data = (state / f"case{info['suffix']}").read_bytes()
            if sig not in st.findings:
                fault = state / "fault.txt"
                text = fault.read_text() if fault.exists() else sig
                _save_finding(out, info["label"], sig, info["suffix"], data, text)
            st.cases += 1
            st.findings[sig] = st.findings.get(sig, 0) + 1
            all_stats = json.loads((state / "stats.json").read_text())
            all_stats[info["label"]] = asdict(st)
            (state / "stats.json").write_text(json.dumps(all_stats))
        raw = json.loads((state / "stats.json").read_text())
    return {label: Stats(**v) for label, v in raw.items()}


def print_table(stats: dict[str, Stats], seconds: float) -> None:
    """Markdown summary: format, cases run, loaded, clean errors, findings."""
    print(f"\nfuzzed for {seconds:g} s\n")
    print("| format | cases | loaded | clean errors | findings |")
    print("|---|---:|---:|---:|---|")
    for label, st in stats.items():
        found = ", ".join(f"{sig} x{n}" for sig, n in st.findings.items()) or "0"
        print(f"| {label} | {st.cases} | {st.loaded} | {st.clean} | {found} |")


def main(argv: list[str] | None = None) -> int:
    """Command line entry; exits 1 when there were findings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="time budget (default 60)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("fuzz_findings"),
        help="folder for crashing inputs (default ./fuzz_findings)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--case-timeout",
        type=float,
        default=10.0,
        help="seconds one case may take before it counts as a hang",
    )
    parser.add_argument(
        "--mem-mb",
        type=int,
        default=3072,
        help="address-space limit of the worker in MB (default 3072)",
    )
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is None:
        stats = fuzz(args.seconds, args.out, args.seed, args.case_timeout, args.mem_mb)
        print_table(stats, args.seconds)
        return 1 if any(st.findings for st in stats.values()) else 0
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    limit = args.mem_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    signal.signal(signal.SIGALRM, _on_alarm)
    with open(args.worker / "fault.txt", "w") as fault, open(os.devnull, "wb") as devnull:
        faulthandler.enable(file=fault)
        # SimpleITK's MetaIO and libjpeg print straight to file descriptor 2: silence it.
        os.dup2(devnull.fileno(), 2)
        worker(args.worker, args.seconds, args.out, args.seed, args.case_timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
