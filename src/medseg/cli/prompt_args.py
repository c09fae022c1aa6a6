"""Prompts of ``medseg segment`` from the command line: ``--box``, ``--box3d``, ``--point``,
``--scribble``, ``--scribble-mask`` and ``--slice`` as :meth:`medseg.Predictor.predict`
keyword arguments. Coordinates are 0-based array indices ``(x, y[, z])``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from medseg.errors import PromptError

__all__ = ["parse_numbers", "parse_point", "parse_scribble", "command_prompts"]


def parse_numbers(text: str, n: int | tuple[int, ...], what: str) -> tuple[float, ...]:
    """``"1,2,3,4"`` -> ``(1.0, 2.0, 3.0, 4.0)``; raises ``PromptError`` naming ``what``."""
    counts = (n,) if isinstance(n, int) else n
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError as exc:
        raise PromptError(f"{what} {text!r} must be comma-separated numbers") from exc
    if len(values) not in counts:
        raise PromptError(f"{what} {text!r} needs {' or '.join(map(str, counts))} numbers")
    return values


def parse_point(text: str) -> tuple[tuple[float, ...], int]:
    """``"x,y[,z][:label]"`` -> ``((x, y[, z]), label)``, label 1 (default) or 0."""
    coords, _, label = text.partition(":")
    xyz = parse_numbers(coords, (2, 3), "point")
    if label not in ("", "0", "1"):
        raise PromptError(f"point label in {text!r} must be 1 (foreground) or 0 (background)")
    return xyz, int(label or 1)


def parse_scribble(text: str) -> dict[str, Any]:
    """``"x,y;x,y;...[:label]"`` -> ``{"points": [(x, y), ...], "label": 1 or 0}``; points
    may also be separated by spaces."""
    coords, _, label = text.partition(":")
    if label not in ("", "0", "1"):
        raise PromptError(f"scribble label in {text!r} must be 1 (foreground) or 0 (background)")
    parts = [p for p in coords.replace(";", " ").split() if p]
    if not parts:
        raise PromptError(f"scribble {text!r} has no points: give x,y;x,y;...[:label]")
    points = [parse_numbers(p, 2, "scribble point") for p in parts]
    return {"points": points, "label": int(label or 1)}


def _scribble_mask(path: Path, shape: tuple[int, ...]) -> Any:
    """``(2, H, W)`` positive/negative scribbles from a label image: 1 = positive,
    2 = negative, 0 = none; ``shape`` is the image's (or one slice's) ``(H, W)``."""
    import numpy as np

    import medseg.io as mio

    arr = np.asarray(mio.load(path).array)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., 0]
    if arr.shape != shape:
        raise PromptError(f"{path}: scribble mask has shape {arr.shape}, the image {shape}")
    bad = ~np.isin(arr, (0, 1, 2))
    if bad.any():
        raise PromptError(f"{path}: scribble mask values must be 0, 1 (positive) or 2 (negative)")
    return np.stack([arr == 1, arr == 2])


def command_prompts(args: argparse.Namespace, shape: tuple[int, ...]) -> dict[str, Any]:
    """predict() keyword arguments from the command line (``shape``: the image's spatial
    shape)."""
    is_3d = len(shape) == 3
    kw: dict[str, Any] = {}
    boxes = [parse_numbers(b, 4, "box") for b in args.box]
    if len(boxes) == 1:
        kw["box"] = boxes[0]
    elif boxes:
        kw["boxes"] = boxes
    if args.box3d:
        kw["box3d"] = parse_numbers(args.box3d, 6, "box3d")
    slice_index = args.slice
    if args.point:
        parsed = [parse_point(p) for p in args.point]
        zs = {xyz[2] for xyz, _ in parsed if len(xyz) == 3}
        if zs and not is_3d:
            raise PromptError("points with a z coordinate need a 3D image")
        if len(zs) > 1 or (zs and slice_index is not None and zs != {slice_index}):
            raise PromptError("all points must be on one slice (the --slice)")
        if zs:
            slice_index = int(zs.pop())
        kw["points"] = [xyz[:2] for xyz, _ in parsed]
        kw["point_labels"] = [lab for _, lab in parsed]
    if args.scribble and args.scribble_mask:
        raise PromptError("give --scribble or --scribble-mask, not both")
    if args.scribble:
        kw["scribbles"] = [parse_scribble(s) for s in args.scribble]
    if args.scribble_mask:
        kw["scribbles"] = _scribble_mask(args.scribble_mask, tuple(shape[-2:]))
    if "scribbles" in kw and is_3d and slice_index is None:
        raise PromptError("scribbles on a volume need --slice (the slice they are drawn on)")
    if slice_index is not None:
        kw["slice_index"] = slice_index
    return kw
