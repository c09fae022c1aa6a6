"""Convert a plain ``images/`` + ``labels/`` folder into the nnU-Net v2 raw layout.

Accepted source layouts (the ones of ``../shared/data/<name>``):

- 2D: ``images/<id>.png`` with ``labels/<id>.png`` (an RGB file counts as three channels);
- 3D: ``images/<id>_0000.nii.gz`` (one file per channel) with ``labels/<id>.nii.gz``;
- any single-file case ``images/<id><ending>`` with ``labels/<id><ending>``.

Images without a label go to ``imagesTs``. Image bytes are copied unchanged; labels are
copied too unless ``binarize`` turns an instance map (0 = background, 1..N = objects) into
a 0/1 mask, which is written with ``medseg.io.save`` on the image grid.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.data.nnunet import NnunetDataset, read_dataset
from medseg.errors import InputError
from medseg.io.atomic import atomic_path
from medseg.io.naming import DATASET_ENDINGS, split_channel, split_ending

__all__ = ["convert_folder"]

log = logging.getLogger(__name__)


def _split_name(path: Path) -> tuple[str, str] | None:
    """``(stem, ending)`` with the ending lower-cased (``.NII.GZ`` -> ``.nii.gz``)."""
    parts = split_ending(path.name, DATASET_ENDINGS)
    return None if parts is None else (parts[0], parts[1].lower())


def _scan(folder: Path) -> dict[str, tuple[Path, str]]:
    out = {}
    if not folder.is_dir():
        return out
    for f in sorted(folder.iterdir()):
        parts = _split_name(f)
        if parts is not None and not f.name.startswith("."):
            out[parts[0]] = (f, parts[1])
    return out


def _group(images: dict[str, tuple[Path, str]], labels: set[str]) -> dict[str, list[Path]]:
    """Case id -> channel files; ``<id>_CCCC`` names are grouped when all images use them."""
    grouped = all(split_channel(stem) for stem in images)
    cases: dict[str, dict[int, Path]] = {}
    for stem, (path, _) in images.items():
        m = split_channel(stem)
        if grouped and m and (m[0] in labels or stem not in labels):
            cases.setdefault(m[0], {})[m[1]] = path
        else:
            cases.setdefault(stem, {})[0] = path
    out = {}
    for cid, chans in cases.items():
        if sorted(chans) != list(range(len(chans))):
            raise InputError(f"{cid}: channel files {sorted(chans)} are not numbered 0..N-1")
        out[cid] = [chans[i] for i in sorted(chans)]
    return out


def _manifest_entry(src: Path) -> dict | None:
    manifest = src.parent / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text())
    except json.JSONDecodeError:
        return None
    for ds in data.get("datasets", []):
        if ds.get("name") == src.name:
            return ds
    return None


def _label_names(values: list[int], given: dict[int, str], binarize: bool) -> dict[str, int]:
    names: dict[str, int] = {"background": 0}
    for v in values:
        if v == 0:
            continue
        raw = given.get(v, "foreground" if binarize else f"label_{v}")
        name = re.sub(r"\s*\(.*\)\s*$", "", raw).strip() or f"label_{v}"
        if name in names:
            name = f"{name}_{v}"
        names[name] = v
    return names


def _check_source(src: Path, dst: Path, overwrite: bool) -> tuple[dict, dict, str]:
    images, labels = _scan(src / "images"), _scan(src / "labels")
    if not images:
        raise InputError(f"{src}: no supported images in {src / 'images'}")
    endings = {e for _, e in images.values()}
    if len(endings) != 1:
        raise InputError(f"{src}: images use several file endings {sorted(endings)}")
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise InputError(f"{dst}: folder is not empty (pass overwrite to replace files)")
    return images, labels, endings.pop()


def _convert_label(src: Path, target: Path, image_shape: tuple, binarize: bool) -> set[int]:
    """Copy (or binarise and re-save) one label; returns the label values it holds."""
    from medseg.io import load_label, save

    label = load_label(src)
    if label.shape != image_shape:
        raise InputError(f"{src}: label shape {label.shape} differs from image {image_shape}")
    if binarize or _split_name(src)[1] != _split_name(target)[1]:  # re-encode, else copy bytes
        arr = (label.array > 0).astype(np.uint8) if binarize else label.array
        save(label.with_array(arr), target)
    else:
        _copy(src, target)
    return {int(v) for v in np.unique(arr if binarize else label.array)}


def convert_folder(
    src: str | Path,
    dst: str | Path,
    *,
    binarize: bool = False,
    channel_names: Sequence[str] | None = None,
    label_names: dict[int, str] | None = None,
    overwrite: bool = False,
) -> NnunetDataset:
    """Write ``dst`` as an nnU-Net raw dataset from ``src/images`` and ``src/labels``.

    Channel and label names come from the arguments, else from ``src/../manifest.json``
    (the shared-data manifest) when it describes ``src``, else generic names.

    Raises:
        InputError: no images, mixed file endings, instance labels without ``binarize``,
            channel count differing between cases, ``dst`` not empty without ``overwrite``.
    """
    from tqdm import tqdm

    from medseg.io import load

    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    images, labels, ending = _check_source(src, dst, overwrite)
    entry = _manifest_entry(src) or {}
    if entry.get("task") == "instance" and not binarize:
        raise InputError(
            f"{src}: labels are instance maps (one id per object); pass --binarize to train "
            "a foreground/background model"
        )
    n_channels, values, n_train = None, set(), 0
    for cid, files in tqdm(
        sorted(_group(images, set(labels)).items()), desc="convert", unit="case", leave=False
    ):
        parts = [load(f) for f in files]
        count = sum(p.num_channels for p in parts)
        if n_channels is not None and count != n_channels:
            raise InputError(f"{cid}: {count} channels, earlier cases have {n_channels}")
        n_channels = count
        sub = "imagesTr" if cid in labels else "imagesTs"
        for i, f in enumerate(files):
            _copy(f, dst / sub / f"{cid}_{i:04d}{ending}")
        if cid in labels:
            n_train += 1
            target = dst / "labelsTr" / f"{cid}{ending}"
            values |= _convert_label(labels[cid][0], target, parts[0].shape, binarize)
    if n_train == 0:
        raise InputError(f"{src}: no image has a label in {src / 'labels'}")
    if len(values) > 255:
        raise InputError(f"{src}: {len(values)} label values look like instances; use --binarize")
    given = label_names or {int(k): v for k, v in entry.get("label_names", {}).items()}
    names = _label_names(sorted(values | {1} if binarize else values), given, binarize)
    _write_dataset_json(dst, src, entry, channel_names, n_channels or 1, ending, n_train, names)
    log.info("converted %d training cases (%s) to %s", n_train, ending, dst)
    return read_dataset(dst)


def _copy(src: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(src, tmp)


def _write_dataset_json(
    dst: Path,
    src: Path,
    entry: dict,
    channel_names: Sequence[str] | None,
    n_channels: int,
    ending: str,
    n_train: int,
    labels: dict[str, int],
) -> None:
    if channel_names is not None:
        names = list(channel_names)
    elif len(entry.get("channel_names", {})) == n_channels:
        names = [entry["channel_names"][str(i)] for i in range(n_channels)]
    elif n_channels == 3:
        names = ["R", "G", "B"]
    else:
        names = [f"channel_{i}" for i in range(n_channels)]
    if len(names) != n_channels:
        raise InputError(f"{len(names)} channel names given, the images have {n_channels}")
    meta = {
        "name": src.name,
        "channel_names": {str(i): n for i, n in enumerate(names)},
        "labels": labels,
        "numTraining": n_train,
        "file_ending": ending,
        "description": f"converted by medseg auto convert from {src}",
    }
    with atomic_path(dst / "dataset.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
