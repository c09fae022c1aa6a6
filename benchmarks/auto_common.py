"""Shared steps of the ``medseg auto`` benchmarks (``auto_adapt.py``, ``auto_semisup.py``,
``auto_corrections.py``, ``auto_label_noise.py``, ...): run a ``medseg`` command with its
output in a log, and convert a ``../shared/data`` set into an nnU-Net raw folder whose fixed
test cases sit in ``imagesTs``/``labelsTs``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

MEDSEG = [sys.executable, "-m", "medseg"]


def run(cmd: list[str], log: Path) -> float:
    """Run a command with its output in ``log``; returns the wall time (raises on failure)."""
    t0 = time.perf_counter()
    with log.open("w") as fh:
        subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - t0


def convert_with_test(
    src: Path,
    test_cases: Sequence[str],
    raw: Path,
    work: Path,
    convert_args: Sequence[str] = (),
    transform: Callable[[Path], None] | None = None,
) -> Path:
    """``medseg auto convert src`` into ``raw`` (once: an existing ``raw/dataset.json`` is
    reused), with every channel image and the label of ``test_cases`` moved from
    ``imagesTr``/``labelsTr`` to ``imagesTs``/``labelsTs``; ``work`` holds the log and the
    temporary folder (so a killed run never leaves a half-written ``raw``); ``transform``
    edits the converted folder in place before the split (e.g. downsampling)."""
    if (raw / "dataset.json").is_file():
        return raw
    tmp = work / "raw_tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    run([*MEDSEG, "auto", "convert", str(src), str(tmp), *convert_args], work / "convert.log")
    if transform is not None:
        transform(tmp)
    meta = json.loads((tmp / "dataset.json").read_text())
    ending = meta["file_ending"]
    for folder in ("imagesTs", "labelsTs"):
        (tmp / folder).mkdir(exist_ok=True)
    for case in test_cases:
        for f in sorted((tmp / "imagesTr").glob(f"{case}_[0-9][0-9][0-9][0-9]{ending}")):
            shutil.move(str(f), str(tmp / "imagesTs" / f.name))
        shutil.move(str(tmp / "labelsTr" / f"{case}{ending}"), str(tmp / "labelsTs"))
    meta["numTraining"] = len(list((tmp / "labelsTr").iterdir()))
    (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    raw.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(tmp), str(raw))
    return raw


def write_results(results: dict, out: Path, copy: Path | None = None) -> None:
    """``results`` as JSON to ``out/results.json`` and, when given, to ``copy`` too (e.g.
    ``benchmarks/results/NAME.json``); called after every arm, so a killed run keeps the
    arms done so far."""
    text = json.dumps(results, indent=2) + "\n"
    (out / "results.json").write_text(text)
    if copy is not None:
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(text)


def fresh_model_dir(work: Path, plan_dir: Path, names: Sequence[str]) -> Path:
    """Empty ``work`` and return ``work/model`` holding copies of ``plan_dir``'s ``names``
    (e.g. ``plans.json``), so every arm trains from the same plan."""
    shutil.rmtree(work, ignore_errors=True)
    model = work / "model"
    model.mkdir(parents=True)
    for name in names:
        shutil.copy(plan_dir / name, model / name)
    return model


def predict_test(model: Path, data: Path, work: Path) -> Path:
    """``medseg auto predict`` of ``data/imagesTs`` into ``work/pred_test`` (one thread)."""
    pred = work / "pred_test"
    run([*MEDSEG, "auto", "predict", str(model), str(data / "imagesTs"), str(pred),
         "--threads", "1"], work / "predict.log")  # fmt: skip
    return pred
