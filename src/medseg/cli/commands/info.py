"""``medseg info``: shape, spacing, orientation, modality, dtype and value range of an image.

Examples::

    medseg info ct.nii.gz
    medseg info dicom_dir/ --series 1.2.840.113619.2.55.3 --json
    medseg info labels.nii.gz --label
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

NAME = "info"
HELP = "show shape, spacing, orientation, modality, dtype and value range of an image"

__all__ = ["NAME", "HELP", "add_arguments", "run", "collect_info"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, metavar="FILE_OR_DIR", help="image file or DICOM folder")
    parser.add_argument("--series", metavar="UID", help="series to read from a DICOM folder")
    parser.add_argument("--label", action="store_true", help="read as a label map")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def collect_info(path: Path, series: str | None = None, label: bool = False) -> dict[str, Any]:
    """Everything ``medseg info`` prints, as a JSON-ready dict."""
    from medseg.io import list_dicom_series, load, load_label

    image = load_label(path, series_uid=series) if label else load(path, series_uid=series)
    info = image.describe()
    axes = ("Z", "Y", "X") if image.ndim == 3 else ("H", "W")
    info["axes"] = "".join(axes) + ("C" if image.channels else "")
    info["direction"] = [list(map(float, row)) for row in image.direction]
    info["orientation_itk_lps"] = image.orientation
    info["orientation_nibabel_ras"] = image.nibabel_orientation
    for key in ("series_uid", "study_uid", "transfer_syntax", "frame_axis", "uniform_spacing"):
        if key in image.meta:
            info[key] = image.meta[key]
    if label:
        info["labels"] = image.labels
        info["label_names"] = {str(k): v for k, v in image.label_names.items()}
    if path.is_dir():
        info["series"] = [
            {k: v for k, v in s.to_dict().items() if k != "files"} for s in list_dicom_series(path)
        ]
    return info


def _fmt(values: Any) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def _print_text(info: dict[str, Any]) -> None:
    rows = [
        ("source", info["source"]),
        ("format", info["format"]),
        ("modality", info["modality"]),
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
    for key in ("series_uid", "transfer_syntax", "frame_axis"):
        if key in info:
            rows.append((key.replace("_", " "), str(info[key])))
    for name, value in rows:
        print(f"{name + ':' if name else '':<13}{value}")
    if "series" in info:
        print(f"series in folder ({len(info['series'])}):")
        for s in info["series"]:
            mark = "*" if s["series_uid"] == info.get("series_uid") else " "
            print(
                f" {mark} {s['series_uid']}  {s['modality']:<4} {s['num_slices']:>4} x "
                f"{s['rows']}x{s['columns']}  {s['num_files']} file(s)  {s['description']!r}"
            )


def run(args: argparse.Namespace) -> int:
    info = collect_info(args.path, args.series, args.label)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        _print_text(info)
    return 0
