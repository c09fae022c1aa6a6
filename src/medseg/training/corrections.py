"""Corrected labels -> an nnU-Net raw training set (``medseg auto export-labels``).

The caller (the CLI, which reads ``medseg serve``'s label store) gives one
:class:`CorrectedCase` per image with a saved label; :func:`write_corrections_dataset`
writes::

    OUT/imagesTr/<case>_0000<ending>   the image (copied or linked when it already has the
                                       label's format, else re-written with medseg.io.save)
    OUT/labelsTr/<case><ending>        the saved label file, byte for byte
    OUT/dataset.json                   channel names, label names, numTraining, file_ending
    OUT/export.json                    per case: image, label version, saved at; skipped images

The ending is the labels' (``.png`` for 2D images, ``.nii.gz`` for volumes). Label names
come from the saved versions; when two images name a value differently (or one name has
two values) the export is refused unless ``names`` states them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.errors import InputError
from medseg.io.atomic import atomic_path
from medseg.io.image import Image

__all__ = ["CorrectedCase", "case_id_for", "merge_label_names", "write_corrections_dataset"]

log = logging.getLogger(__name__)

_ENDINGS = (".png", ".nii.gz")


@dataclass(frozen=True)
class CorrectedCase:
    """One image with its latest saved label.

    Attributes:
        case_id: nnU-Net case id (see :func:`case_id_for`).
        source: the image's name in the store (for messages and ``export.json``).
        num_channels, modality: of the image (``Image.num_channels``, ``Image.modality``).
        image_path: its file, copied when it has the label's format (None: always re-written).
        load_image: returns the decoded image (array ``(Y, X)``, ``(Y, X, C)`` RGB or
            ``(Z, Y, X)``), called only to re-write it (so not every image is held in memory).
        label_path: the saved label file (``vNNNN.png`` / ``vNNNN.nii.gz``).
        label_names: label value -> name of that version (background not included).
        version: the label version number; ``created``: when it was saved.
    """

    case_id: str
    source: str
    num_channels: int
    modality: str
    image_path: Path | None
    load_image: Callable[[], Image]
    label_path: Path
    label_names: dict[int, str]
    version: int
    created: str = ""


def case_id_for(name: str) -> str:
    """A case id from an image's relative name: extension dropped, every run of characters
    other than letters, digits, ``-`` and ``.`` replaced by ``_`` (``"a/b 1.nii.gz"`` ->
    ``"a_b_1"``)."""
    stem = name
    for ext in (".nii.gz", ".nii", ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".nrrd",
                ".mha", ".mhd", ".dcm"):  # fmt: skip
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
            break
    case = re.sub(r"[^A-Za-z0-9.-]+", "_", stem).strip("_.")
    if not case:
        raise InputError(f"{name!r}: no usable case id")
    return case


def merge_label_names(
    cases: Sequence[CorrectedCase], names: dict[int, str] | None = None
) -> dict[str, int]:
    """``dataset.json`` ``labels`` (name -> value, background 0) for ``cases``.

    ``names`` (value -> name) states the names; then every value a case declares must be in
    it. Without ``names``, the versions' own names are merged; a value named differently by
    two images, or a name given to two values, raises ``InputError`` naming the images.
    """
    if names is not None:
        if any(v < 1 for v in names):
            raise InputError(f"--names: values must be >= 1 (0 is background), got {names}")
        for c in cases:
            missing = sorted(set(c.label_names) - set(names))
            if missing:
                raise InputError(f"{c.source}: label values {missing} are not in --names")
        merged = dict(names)
    else:
        seen: dict[int, tuple[str, str]] = {}  # value -> (name, first image)
        for c in cases:
            for value, name in sorted(c.label_names.items()):
                if value in seen and seen[value][0] != name:
                    raise InputError(
                        f"label value {value} is {seen[value][0]!r} in {seen[value][1]} but "
                        f"{name!r} in {c.source}; rename it in the app or state the names, "
                        f"e.g. --names {value}={seen[value][0]}"
                    )
                seen.setdefault(value, (name, c.source))
        merged = {v: n for v, (n, _) in seen.items()}
    by_name: dict[str, int] = {}
    for value, name in sorted(merged.items()):
        if name == "background":
            raise InputError(f"label value {value} is named 'background', the name of 0")
        if name in by_name:
            raise InputError(f"label name {name!r} is given to values {by_name[name]} and "
                             f"{value}; every label needs its own name")  # fmt: skip
        by_name[name] = value
    return {"background": 0, **by_name}


def _ending(cases: Sequence[CorrectedCase]) -> str:
    endings = set()
    for c in cases:
        ending = next((e for e in _ENDINGS if c.label_path.name.endswith(e)), None)
        if ending is None:
            raise InputError(f"{c.source}: label file {c.label_path.name} is not .png/.nii.gz")
        endings.add(ending)
    if len(endings) > 1:
        raise InputError("the saved labels mix 2D (.png) and 3D (.nii.gz) images; export "
                         "them into separate datasets")  # fmt: skip
    return endings.pop()


def _channel_names(cases: Sequence[CorrectedCase], given: Sequence[str] | None) -> list[str]:
    counts = {c.num_channels for c in cases}
    if len(counts) > 1:
        per = ", ".join(f"{c.source}: {c.num_channels}" for c in cases[:6])
        raise InputError(f"the images have different channel counts ({per})")
    n = counts.pop()
    if given is not None:
        if len(given) != n:
            raise InputError(f"{len(given)} channel names given, the images have {n}")
        return list(given)
    modalities = {c.modality for c in cases}
    if n == 1 and len(modalities) == 1 and (m := modalities.pop()) not in ("unknown", "RGB"):
        return [m]
    return ["R", "G", "B"] if n == 3 else [f"channel_{i}" for i in range(n)]


def _write_image(case: CorrectedCase, target: Path, ending: str, link: bool) -> str:
    """Copy, link or re-write the image; returns how."""
    from medseg.io import save

    src = case.image_path
    if src is not None and src.is_file() and src.name.lower().endswith(ending):
        if link:
            os.symlink(src.resolve(), target)
            return "linked"
        with atomic_path(target) as tmp:
            shutil.copyfile(src, tmp)
        return "copied"
    save(case.load_image(), target)
    return "written"


def write_corrections_dataset(
    cases: Sequence[CorrectedCase],
    out: str | Path,
    *,
    names: dict[int, str] | None = None,
    channel_names: Sequence[str] | None = None,
    skipped: Sequence[str] = (),
    link: bool = False,
    dataset_name: str = "corrections",
) -> dict[str, Any]:
    """Write the nnU-Net raw dataset of ``cases`` into ``out`` (new or empty); returns the
    ``export.json`` content. ``skipped``: names of images without a saved label (listed)."""
    out = Path(out)
    if not cases:
        raise InputError("no image has a saved label: nothing to export")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out}: exists and is not empty; export into a new folder")
    ids = [c.case_id for c in cases]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        clash = [c.source for c in cases if c.case_id in dup]
        raise InputError(f"images {clash} give the same case id {dup[0]!r}")
    labels = merge_label_names(cases, names)
    ending = _ending(cases)
    channels = _channel_names(cases, channel_names)
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(exist_ok=True)
    rows = []
    for c in sorted(cases, key=lambda c: c.case_id):
        how = _write_image(c, out / "imagesTr" / f"{c.case_id}_0000{ending}", ending, link)
        with atomic_path(out / "labelsTr" / f"{c.case_id}{ending}") as tmp:
            shutil.copyfile(c.label_path, tmp)
        rows.append({"case": c.case_id, "image": c.source, "image_file": how,
                     "version": c.version, "created": c.created})  # fmt: skip
    meta = {
        "name": dataset_name,
        "channel_names": {str(i): n for i, n in enumerate(channels)},
        "labels": labels,
        "numTraining": len(rows),
        "file_ending": ending,
        "description": "labels saved in medseg serve, exported by medseg auto export-labels",
    }
    with atomic_path(out / "dataset.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
    record = {"cases": rows, "skipped": sorted(skipped), "labels": labels}
    with atomic_path(out / "export.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    log.info("exported %d labelled images to %s (%d without label skipped)", len(rows), out,
             len(skipped))  # fmt: skip
    return record
