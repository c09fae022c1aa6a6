"""``medseg info``: shape, spacing, orientation, modality, dtype and value range of an image.

Examples::

    medseg info ct.nii.gz
    medseg info dicom_dir/ --series 1.2.840.113619.2.55.3 --json
    medseg info labels.nii.gz --label
    medseg info retinamnist.npz                      # lists the arrays of a multi-array NPZ
    medseg info retinamnist.npz --key train_images --index 0
    medseg info CT_DICOM/ --allow-irregular-slices  # irregular slice gaps: mean-gap grid
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

NAME = "info"
HELP = "show shape, spacing, orientation, modality, dtype and value range of an image"

__all__ = ["NAME", "HELP", "add_arguments", "add_read_options", "read_options", "run",
           "collect_info"]  # fmt: skip


def add_read_options(parser: argparse.ArgumentParser) -> None:
    """``--key``, ``--index`` and ``--allow-irregular-slices`` (shared with ``convert``)."""
    parser.add_argument("--key", metavar="NAME", help="array to read from a multi-array .npz")
    parser.add_argument(
        "--index",
        type=int,
        metavar="N",
        help="one sample along the first axis of a stacked .npy/.npz array",
    )
    parser.add_argument(
        "--allow-irregular-slices",
        action="store_true",
        help="read a DICOM series with irregular slice gaps on a regular grid with the mean "
        "gap (default: refuse); the real positions are kept in the metadata",
    )


def read_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for ``medseg.io.load``/``load_label`` from ``add_read_options``."""
    return {
        "series_uid": args.series,
        "key": args.key,
        "index": args.index,
        "irregular": "mean" if args.allow_irregular_slices else "error",
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, metavar="FILE_OR_DIR", help="image file or DICOM folder")
    parser.add_argument("--series", metavar="UID", help="series to read from a DICOM folder")
    parser.add_argument("--label", action="store_true", help="read as a label map")
    add_read_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _npz_listing(path: Path, options: dict[str, Any]) -> dict[str, Any] | None:
    """The arrays of a multi-array ``.npz`` read without ``--key``, else None."""
    from medseg.io.arrays import npz_arrays, npz_needs_key
    from medseg.io.formats import detect_format

    if options["key"] is not None or not path.is_file() or detect_format(path) != "npz":
        return None
    arrays = npz_arrays(path)
    if not npz_needs_key([a["key"] for a in arrays]):
        return None
    return {"source": str(path), "format": "npz", "arrays": arrays}


def collect_info(
    path: Path, series: str | None = None, label: bool = False, **options: Any
) -> dict[str, Any]:
    """Everything ``medseg info`` prints, as a JSON-ready dict.

    ``options`` are ``key``, ``index`` and ``irregular`` of ``medseg.io.load``. A
    multi-array ``.npz`` without ``key`` gives ``{"source", "format", "arrays"}`` (key,
    shape and dtype of each array) instead of the image summary.
    """
    from medseg.io import list_dicom_series, load, load_label

    options = {"key": None, "index": None, "irregular": "error", **options}
    listing = _npz_listing(path, options)
    if listing is not None:
        return listing
    read = load_label if label else load
    image = read(path, series_uid=series, **options)
    info = image.describe()
    axes = ("Z", "Y", "X") if image.ndim == 3 else ("H", "W")
    info["axes"] = "".join(axes) + ("C" if image.channels else "")
    info["direction"] = [list(map(float, row)) for row in image.direction]
    info["orientation_itk_lps"] = image.orientation
    info["orientation_nibabel_ras"] = image.nibabel_orientation
    for key in ("series_uid", "study_uid", "transfer_syntax", "frame_axis", "uniform_spacing",
                "npz_key", "index"):  # fmt: skip
        if key in image.meta:
            info[key] = image.meta[key]
    if image.meta.get("uniform_spacing") is False:
        info["slice_gaps"] = image.meta.get("slice_gaps")
        info["slice_positions"] = image.meta.get("slice_positions")
    if not label:
        guessed = _guessed_modality(image)
        if guessed is not None:
            info["modality_guessed"] = guessed
    if label:
        info["labels"] = image.labels
        info["label_names"] = {str(k): v for k, v in image.label_names.items()}
    if path.is_dir():
        info["series"] = [
            {k: v for k, v in s.to_dict().items() if k != "files"} for s in list_dicom_series(path)
        ]
    return info


def _guessed_modality(image: Any) -> str | None:
    """The modality ``medseg segment`` would assume for a file that states none, else None.

    The same rule as the predictor (:func:`medseg.inference.image_input.guess_modality`:
    HU-like intensities -> ``"CT"``), so ``info`` tells what the CT window will be used for.
    """
    if image.channels or image.modality not in ("", "unknown"):
        return None
    from medseg.inference.image_input import guess_modality

    guessed = guess_modality(image, image.array)
    return guessed if guessed != image.modality else None


def _fmt(values: Any) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def _print_arrays(info: dict[str, Any]) -> None:
    print(f"{'source:':<13}{info['source']}")
    print(f"NPZ with {len(info['arrays'])} arrays; pick one with --key NAME (and --index N):")
    width = max(len(a["key"]) for a in info["arrays"])
    for a in info["arrays"]:
        print(f"  {a['key']:<{width}}  {tuple(a['shape'])!s:<20} {a['dtype']}")


def _print_text(info: dict[str, Any]) -> None:
    if "arrays" in info:
        _print_arrays(info)
        return
    modality = info["modality"]
    if info.get("modality_guessed"):
        modality = f"{info['modality_guessed']} (guessed from intensities)"
    rows = [
        ("source", info["source"]),
        ("format", info["format"]),
        ("modality", modality),
        ("shape", f"{tuple(info['shape'])}  axes {info['axes']}"),
        ("dtype", info["dtype"]),
        ("spacing", f"{_fmt(info['spacing'])} mm, array order"),
        ("origin", f"{_fmt(info['origin'])} mm, LPS (x, y[, z])"),
        ("orientation", f"{info['orientation_itk_lps']}  (ITK/DICOM, LPS world)"),
        ("", f"{info['orientation_nibabel_ras']}  (nibabel aff2axcodes, RAS world)"),
        ("range", f"{info['min']:.6g} .. {info['max']:.6g}"),
    ]
    if "labels" in info:
        names = info["label_names"]
        rows.append(("labels", ", ".join(f"{v}={names.get(str(v), '?')}" if names else str(v)
                                         for v in info["labels"]) or "(none)"))  # fmt: skip
    if info.get("slice_gaps"):
        gaps = ", ".join(f"{g:.6g}" for g in info["slice_gaps"])
        rows.append(("slice gaps", f"{gaps} mm (not uniform; spacing above is the mean gap)"))
    for key in ("series_uid", "transfer_syntax", "frame_axis", "npz_key", "index"):
        if key in info:
            rows.append((key.replace("_", " "), str(info[key])))
    width = max(len(name) for name, _ in rows) + 2  # "name:" and one space
    for name, value in rows:
        print(f"{name + ':' if name else '':<{width}}{value}")
    if "series" in info:
        print(f"series in folder ({len(info['series'])}):")
        for s in info["series"]:
            mark = "*" if s["series_uid"] == info.get("series_uid") else " "
            print(
                f" {mark} {s['series_uid']}  {s['modality']:<4} {s['num_slices']:>4} x "
                f"{s['rows']}x{s['columns']}  {s['num_files']} file(s)  {s['description']!r}"
            )


def run(args: argparse.Namespace) -> int:
    options = read_options(args)
    info = collect_info(args.path, options.pop("series_uid"), args.label, **options)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        _print_text(info)
    return 0
