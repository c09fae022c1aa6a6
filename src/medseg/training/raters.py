"""Training from several raters' label maps: fuse them once, train on the fused labels.

Layout: a dataset with several raters holds one label folder per rater beside ``imagesTr``,
named ``labelsTr_<rater>`` (``labelsTr_anna/``, ``labelsTr_ben/``, ...), each with one file
``<case><file_ending>`` per training case, as ``labelsTr`` would; ``labelsTr`` itself is
not used. Rater folders elsewhere can be given explicitly.

:func:`prepare_rater_dataset` (``medseg auto train|run DATA --raters [DIR ...]``):

- fuses each case (:func:`medseg.data.fusion.fuse_labels`, STAPLE or vote) into
  ``MODEL/fused_labels/<case><ending>``, once: a later call with the same rater files and
  method reuses them (``inputs_hash`` in ``raters.json``);
- builds ``MODEL/fused_data/``, the dataset the usual pipeline trains on: ``dataset.json``
  copied (``name`` kept from the source folder), ``imagesTr``/``imagesTs`` symlinked to the
  source, ``labelsTr`` a symlink to ``../fused_labels``, and ``labels_hash.txt`` (the hash
  of the fused files), which ties the preprocessed cache to the fused labels
  (:func:`medseg.training.cache.dataset_cache_key`): new fused labels rebuild it;
- writes the agreement to ``MODEL/raters.json``: per case and per class, the mean pairwise
  Dice between raters and each rater's Dice against the fused label (and per case Fleiss'
  kappa), with the means over cases; ``medseg auto run`` puts it into the report.
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
from medseg.training.cache import LABELS_HASH_FILE

__all__ = [
    "RATER_PREFIX",
    "find_rater_dirs",
    "fused_data_dir",
    "load_rater_summary",
    "prepare_rater_dataset",
]

log = logging.getLogger(__name__)

#: Rater label folders inside a dataset are named ``labelsTr_<rater>``.
RATER_PREFIX = "labelsTr_"


def fused_data_dir(model_dir: str | Path) -> Path:
    """``MODEL/fused_data``: the dataset folder that training on fused labels reads."""
    return Path(model_dir) / "fused_data"


def find_rater_dirs(data_dir: str | Path, rater_dirs: Sequence[str | Path] = ()) -> list[Path]:
    """The rater folders: ``rater_dirs`` as given, or else ``DATA/labelsTr_*`` (sorted).

    Raises:
        InputError: fewer than two folders, or a given folder that does not exist.
    """
    data_dir = Path(data_dir).expanduser()
    if rater_dirs:
        dirs = [Path(d).expanduser() for d in rater_dirs]
        where = "given with --raters"
    else:
        dirs = sorted(d for d in data_dir.glob(f"{RATER_PREFIX}*") if d.is_dir())
        where = f"found in {data_dir} ({RATER_PREFIX}<rater>/)"
    for d in dirs:
        if not d.is_dir():
            raise InputError(f"rater label folder {d} does not exist")
    if len(dirs) < 2:
        names = ", ".join(str(d) for d in dirs) or "none"
        raise InputError(
            f"training from raters needs at least 2 rater label folders, {len(dirs)} "
            f"{where}: {names}"
        )
    return dirs


def _rater_names(dirs: Sequence[Path]) -> list[str]:
    names = [d.name.removeprefix(RATER_PREFIX) or d.name for d in dirs]
    if len(set(names)) < len(names):
        names = [f"{n}{i + 1}" for i, n in enumerate(names)]
    return names


def _match_cases(
    cases: dict[str, list[Path]], image_ids: list[str], names: list[str], ending: str
) -> None:
    """Every rater file ends with the dataset's ending; rater cases == imagesTr cases."""
    for case, files in cases.items():
        for name, f in zip(names, files, strict=True):
            if not f.name.endswith(ending):
                raise InputError(
                    f"case {case}: rater {name}'s file {f} does not end with the dataset's "
                    f"file_ending {ending!r}"
                )
    missing = sorted(set(image_ids) - set(cases))
    if missing:
        raise InputError(
            f"case {missing[0]} has an image in imagesTr but no label from the raters "
            f"({len(missing)} such case(s): {', '.join(missing[:5])})"
        )
    extra = sorted(set(cases) - set(image_ids))
    if extra:
        raise InputError(f"case {extra[0]}: the raters label it but imagesTr has no image for it")


def _hash_files(files: Sequence[Path], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for f in files:
        h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def _link(target: Path, link: Path) -> None:
    """``link`` -> ``target`` (a folder); copies when the system refuses symlinks."""
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    try:
        link.symlink_to(target, target_is_directory=True)
    except OSError:  # pragma: no cover - e.g. Windows without the symlink privilege
        log.warning("cannot symlink %s: copying it", link)
        shutil.copytree(link.parent / target, link)


def _make_view(data_dir: Path, model_dir: Path, meta: dict[str, Any], labels_hash: str) -> Path:
    view = fused_data_dir(model_dir)
    view.mkdir(parents=True, exist_ok=True)
    with atomic_path(view / "dataset.json") as tmp:
        tmp.write_text(json.dumps({"name": data_dir.name, **meta}, indent=2) + "\n")
    for sub in ("imagesTr", "imagesTs"):
        if (data_dir / sub).is_dir():
            _link((data_dir / sub).resolve(), view / sub)
    _link(Path("..") / "fused_labels", view / "labelsTr")
    with atomic_path(view / LABELS_HASH_FILE) as tmp:
        tmp.write_text(labels_hash + "\n")
    return view


def _check_values(case: str, names: list[str], files: list[Path], maps: list, allowed: set) -> None:
    for name, f, m in zip(names, files, maps, strict=True):
        unknown = sorted({int(v) for v in np.unique(m.array)} - allowed)
        if unknown:
            raise InputError(
                f"case {case}: rater {name} ({f}) uses label values {unknown} that are not in "
                f"dataset.json labels {sorted(allowed)}"
            )


def _fuse_all(
    cases: dict[str, list[Path]], out: Path, names: list[str], labels: dict[str, int], method: str
) -> tuple[list[Path], list[Any]]:
    """Fuse every case into ``out`` (emptied first); returns the files and agreement rows."""
    from medseg.data.fusion import agreement, fuse_labels, load_rater_case
    from medseg.io.image import LabelMap
    from medseg.io.writers import save

    if out.is_dir():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    allowed = set(labels.values()) | {0}
    written, rows = [], []
    for case, files in cases.items():
        maps = load_rater_case(case, files)
        _check_values(case, names, files, maps, allowed)
        arrays = [m.array for m in maps]
        fused = fuse_labels(arrays, method)
        target = out / files[0].name
        save(
            LabelMap.like(maps[0], fused, label_names={v: k for k, v in labels.items() if v}),
            target,
        )
        written.append(target)
        rows.append(agreement(case, arrays, fused))
    return written, rows


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _summary(rows: Sequence[Any], names: list[str], labels: dict[str, int]) -> dict[str, Any]:
    """The agreement part of ``raters.json`` (see the module docstring)."""
    per_class = {}
    for name, v in sorted(labels.items(), key=lambda kv: kv[1]):
        got = [r.per_class[v] for r in rows if v in r.per_class]
        if v == 0 or not got:
            continue
        per_class[str(v)] = {
            "name": name,
            "n_cases": len(got),
            "pairwise_dice": _mean([g.pairwise_dice for g in got]),
            "dice_vs_fused": {n: _mean([g.dice_vs_fused[i] for g in got])
                              for i, n in enumerate(names)},
        }  # fmt: skip
    cases = [
        {
            "case": r.case,
            "pairwise_dice": r.pairwise_dice,
            "fleiss_kappa": r.fleiss_kappa,
            "dice_vs_fused": dict(zip(names, r.dice_vs_fused, strict=True)),
            "per_class": {
                str(v): {
                    "pairwise_dice": c.pairwise_dice,
                    "dice_vs_fused": dict(zip(names, c.dice_vs_fused, strict=True)),
                }
                for v, c in sorted(r.per_class.items())
            },
        }
        for r in rows
    ]
    return {
        "n_cases": len(rows),
        "mean_pairwise_dice": _mean([r.pairwise_dice for r in rows]),
        "mean_fleiss_kappa": _mean([r.fleiss_kappa for r in rows]),
        "mean_dice_vs_fused": {n: _mean([r.dice_vs_fused[i] for r in rows])
                               for i, n in enumerate(names)},
        "per_class": per_class,
        "cases": cases,
    }  # fmt: skip


def load_rater_summary(model_dir: str | Path) -> dict[str, Any] | None:
    """``MODEL/raters.json`` written by :func:`prepare_rater_dataset`, or None."""
    path = Path(model_dir) / "raters.json"
    return json.loads(path.read_text()) if path.is_file() else None


def prepare_rater_dataset(
    data_dir: str | Path,
    model_dir: str | Path,
    rater_dirs: Sequence[str | Path] = (),
    method: str = "staple",
) -> tuple[Path, dict[str, Any]]:
    """Fuse the raters' labels (once) and build the dataset to train on.

    Args:
        data_dir: nnU-Net raw dataset folder (``dataset.json``, ``imagesTr``).
        model_dir: the model folder; gets ``fused_labels/``, ``fused_data/``, ``raters.json``.
        rater_dirs: rater label folders; empty = ``DATA/labelsTr_*``.
        method: ``"staple"`` or ``"vote"`` (:mod:`medseg.data.fusion`).

    Returns:
        ``(MODEL/fused_data, summary)``: the dataset folder and the ``raters.json`` content.

    Raises:
        InputError: fewer than two raters; a rater lacking a case (naming both); raters'
            maps of a case with different shapes or geometry (naming case and files); a
            rater file with another ending or unknown label values; rater cases that are
            not the ``imagesTr`` cases; an unknown method.
    """
    from medseg.data.fusion import FUSION_METHODS, find_rater_cases
    from medseg.data.nnunet import image_case_ids, read_dataset_json

    if method not in FUSION_METHODS:
        raise InputError(f"unknown fusion method {method!r}; use one of {FUSION_METHODS}")
    data_dir, model_dir = Path(data_dir).expanduser(), Path(model_dir)
    meta = read_dataset_json(data_dir)
    ending = str(meta["file_ending"])
    dirs = find_rater_dirs(data_dir, rater_dirs)
    names = _rater_names(dirs)
    cases = find_rater_cases(dirs)
    _match_cases(cases, image_case_ids(data_dir, ending), names, ending)
    inputs = _hash_files([f for fs in cases.values() for f in fs], f"{method} {names}")
    previous = load_rater_summary(model_dir)
    fused = model_dir / "fused_labels"
    if (
        previous is not None
        and previous.get("inputs_hash") == inputs
        and all((fused / fs[0].name).is_file() for fs in cases.values())
    ):
        log.info("raters unchanged: reusing the fused labels in %s", fused)
        _make_view(data_dir, model_dir, meta, previous["labels_hash"])
        return fused_data_dir(model_dir), previous
    return _fuse_and_record(data_dir, model_dir, meta, (dirs, names, cases), method, inputs)


def _fuse_and_record(
    data_dir: Path, model_dir: Path, meta: dict[str, Any], raters: tuple, method: str,
    inputs: str,
) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    """:func:`prepare_rater_dataset` when the raters changed. ``raters``: ``(dirs, names,
    cases)``, the rater folders, their names and case -> one file per rater. Fuses the cases
    into ``MODEL/fused_labels``, builds the dataset view and writes ``raters.json`` (last);
    returns ``(MODEL/fused_data, summary)``."""
    from medseg.data.nnunet_labels import parse_labels

    dirs, names, cases = raters
    fused = model_dir / "fused_labels"
    labels = parse_labels(meta["labels"], data_dir / "dataset.json")
    model_dir.mkdir(parents=True, exist_ok=True)
    written, rows = _fuse_all(cases, fused, names, labels, method)
    summary = {
        "method": method,
        "raters": names,
        "rater_dirs": [str(d.resolve()) for d in dirs],
        "inputs_hash": inputs,
        "labels_hash": _hash_files(written),
        **_summary(rows, names, labels),
    }
    view = _make_view(data_dir, model_dir, meta, summary["labels_hash"])
    with atomic_path(model_dir / "raters.json") as tmp:  # last: marks the fusion complete
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    log.info(
        "fused %d raters (%s) over %d cases into %s: mean pairwise Dice %.3f, Fleiss kappa %.3f",
        len(names), method, len(rows), fused, summary["mean_pairwise_dice"],
        summary["mean_fleiss_kappa"],
    )  # fmt: skip
    return view, summary
