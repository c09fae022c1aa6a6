"""Training from several raters' label folders: fuse them, then train on the fused labels.

``medseg auto train DATA --raters R1 R2 R3 [--fuse staple|vote]`` fuses the raters' label
maps with :func:`medseg.data.fusion.fuse_folders` into ``MODEL/fused_labels`` and trains on a
dataset view ``MODEL/fused_data`` that is ``DATA`` with its ``labelsTr`` replaced by the fused
labels (``dataset.json`` copied, ``imagesTr``/``imagesTs`` linked, not copied). The
inter-rater agreement (mean pairwise Dice between raters and Fleiss' kappa, per case and their
means) is written to ``MODEL/raters.json`` and goes into the ``auto run`` report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.io.atomic import atomic_path

__all__ = ["prepare_rater_dataset", "load_rater_summary"]

log = logging.getLogger(__name__)


def _link(target: Path, link: Path) -> None:
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    link.symlink_to(target.resolve(), target_is_directory=True)


def _make_view(data_dir: Path, view: Path, labels: Path) -> None:
    view.mkdir(parents=True, exist_ok=True)
    if not (data_dir / "dataset.json").is_file():
        raise InputError(f"{data_dir}: no dataset.json (is this an nnU-Net raw dataset folder?)")
    shutil.copyfile(data_dir / "dataset.json", view / "dataset.json")
    if not (data_dir / "imagesTr").is_dir():
        raise InputError(f"{data_dir}: no imagesTr folder")
    _link(data_dir / "imagesTr", view / "imagesTr")
    _link(labels, view / "labelsTr")
    if (data_dir / "imagesTs").is_dir():
        _link(data_dir / "imagesTs", view / "imagesTs")


def _labels_hash(files: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def _summary(result: Any) -> dict[str, Any]:
    rows = result.rows
    return {
        "method": result.method,
        "raters": list(result.raters),
        "n_cases": len(rows),
        "mean_pairwise_dice": float(np.mean([r.pairwise_dice for r in rows])),
        "mean_fleiss_kappa": float(np.mean([r.fleiss_kappa for r in rows])),
        "mean_dice_vs_fused": [
            float(np.mean([r.dice_vs_fused[i] for r in rows])) for i in range(len(result.raters))
        ],
        "lowest_agreement_case": min(rows, key=lambda r: r.pairwise_dice).case,
        "agreement_csv": str(result.csv_path),
        "cases": [
            {
                "case": r.case,
                "pairwise_dice": r.pairwise_dice,
                "fleiss_kappa": r.fleiss_kappa,
                "dice_vs_fused": list(r.dice_vs_fused),
            }
            for r in rows
        ],
    }


def prepare_rater_dataset(
    data_dir: str | Path,
    model_dir: str | Path,
    rater_dirs: Sequence[str | Path],
    method: str = "staple",
) -> tuple[Path, dict[str, Any]]:
    """Fuse the raters' folders and build the dataset view to train on.

    Every rater folder holds one label file per training case, named as ``labelsTr`` would
    (``<case><file_ending>``); ``DATA/labelsTr`` itself is not used.

    Returns:
        ``(MODEL/fused_data, summary)``: the dataset folder to train on and the agreement
        summary (also written to ``MODEL/raters.json``).

    Raises:
        InputError: fewer than two raters, raters with different case sets or grids (from
            :func:`medseg.data.fusion.fuse_folders`), rater cases that do not match the
            dataset's ``imagesTr`` cases, or a fused label off its image's grid.
    """
    from medseg.data.fusion import fuse_folders
    from medseg.data.nnunet import read_dataset

    data_dir, model_dir = Path(data_dir).expanduser(), Path(model_dir)
    labels, view = model_dir / "fused_labels", model_dir / "fused_data"
    model_dir.mkdir(parents=True, exist_ok=True)
    if labels.is_dir():  # a previous fusion: rebuild it from the raters given now
        shutil.rmtree(labels)
    result = fuse_folders(rater_dirs, labels, method)
    _make_view(data_dir, view, labels)
    ds = read_dataset(view)
    if ds.problems:
        missing = [p for p in ds.problems if "label file" in p or "has no image" in p]
        detail = "; ".join((missing or list(ds.problems))[:5])
        raise InputError(
            f"the rater folders do not match the cases of {data_dir / 'imagesTr'} "
            f"(each rater needs <case>{ds.file_ending} for every training case): {detail}"
        )
    summary = {**_summary(result), "labels_hash": _labels_hash(result.written)}
    previous = load_rater_summary(model_dir)
    cache = model_dir / "preprocessed"
    if cache.is_dir() and (previous or {}).get("labels_hash") != summary["labels_hash"]:
        log.info("fused labels changed: clearing the preprocessed cache %s", cache)
        shutil.rmtree(cache)
    with atomic_path(model_dir / "raters.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    log.info(
        "fused %d raters (%s) over %d cases: mean pairwise Dice %.3f, Fleiss kappa %.3f",
        len(result.raters), method, summary["n_cases"], summary["mean_pairwise_dice"],
        summary["mean_fleiss_kappa"],
    )  # fmt: skip
    return view, summary


def load_rater_summary(model_dir: str | Path) -> dict[str, Any] | None:
    """``MODEL/raters.json`` written by :func:`prepare_rater_dataset`, or None."""
    path = Path(model_dir) / "raters.json"
    return json.loads(path.read_text()) if path.is_file() else None
