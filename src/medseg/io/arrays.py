"""NumPy ``.npy`` / ``.npz`` files.

- ``.npy`` holds one array and no geometry. A 3D array whose last axis has 3 or 4 entries
  and dtype uint8 is read as a 2D RGB(A) image ``(H, W, C)``; every other 3D array is a
  volume ``(Z, Y, X)``.
- ``.npz``: the array is key ``image``, ``array`` or ``label`` (first found), or the only
  array in the file. Optional keys written by ``save``: ``spacing`` (array order),
  ``origin``, ``direction`` (ITK/LPS), ``channels`` (bool), ``modality`` (str), and for
  label maps ``label_values`` + ``label_names``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.io.image import Image, LabelMap

__all__ = ["read_array_file", "write_array_file", "ARRAY_KEYS"]

#: Keys that ``.npz`` reading takes as the image array, in order of preference.
ARRAY_KEYS = ("image", "array", "label")
_GEOMETRY_KEYS = ("spacing", "origin", "direction", "channels", "modality",
                  "label_values", "label_names")  # fmt: skip


def read_array_file(path: Path, fmt: str, *, modality: str | None = None) -> Image:
    """Read ``.npy``/``.npz`` as an ``Image`` (geometry from ``.npz`` keys when present)."""
    extra: dict[str, Any] = {}
    try:
        if fmt == "npy":
            arr = np.load(path, allow_pickle=False)
        else:
            arr, extra = _read_npz(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: cannot read {fmt.upper()} ({exc})") from exc
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise InputError(
            f"{path}: expected a numeric array, got dtype {getattr(arr, 'dtype', '?')}"
        )
    if "channels" in extra:
        channels = bool(extra["channels"])
    else:
        channels = arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.dtype == np.uint8
    spatial = arr.ndim - (1 if channels else 0)
    if spatial not in (2, 3):
        raise InputError(
            f"{path}: array of shape {arr.shape} is not a 2D image or 3D volume"
            + (" (4D: time series or stacked channels are not supported)" if spatial == 4 else "")
        )
    meta: dict[str, Any] = {"path": str(path), "format": fmt}
    if "label_values" in extra:
        meta["label_names"] = dict(zip(extra["label_values"], extra["label_names"], strict=True))
    default = "RGB" if channels and arr.shape[-1] in (3, 4) and spatial == 2 else "unknown"
    return Image(
        array=arr,
        spacing=tuple(extra.get("spacing", ())),
        origin=tuple(extra.get("origin", ())),
        direction=extra.get("direction"),
        channels=channels,
        modality=modality or extra.get("modality") or default,
        meta=meta,
    )


def _read_npz(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    with np.load(path, allow_pickle=False) as npz:
        keys = list(npz.files)
        array_keys = [k for k in keys if k not in _GEOMETRY_KEYS]
        key = next((k for k in ARRAY_KEYS if k in keys), None)
        if key is None:
            if len(array_keys) != 1:
                raise InputError(
                    f"{path}: NPZ has keys {keys}; expected one of {list(ARRAY_KEYS)} or a "
                    "single array"
                )
            key = array_keys[0]
        arr = npz[key]
        extra: dict[str, Any] = {}
        for k in _GEOMETRY_KEYS:
            if k in keys:
                value = npz[k]
                extra[k] = value.item() if value.ndim == 0 else value
        if "label_values" in extra:
            extra["label_values"] = [int(v) for v in np.atleast_1d(extra["label_values"])]
            extra["label_names"] = [str(v) for v in np.atleast_1d(extra["label_names"])]
        if "modality" in extra:
            extra["modality"] = str(extra["modality"])
    return arr, extra


def write_array_file(obj: Image, target: Path, fmt: str) -> None:
    """Write ``obj`` to ``target`` (from ``atomic_path``): ``.npy`` array only, ``.npz`` with
    geometry (key ``label`` for a ``LabelMap``, else ``image``)."""
    if fmt == "npy":
        np.save(target, obj.array, allow_pickle=False)
        return
    is_label = isinstance(obj, LabelMap)
    payload: dict[str, Any] = {
        "label" if is_label else "image": obj.array,
        "spacing": np.asarray(obj.spacing, dtype=float),
        "origin": np.asarray(obj.origin, dtype=float),
        "direction": np.asarray(obj.direction, dtype=float),
        "channels": np.asarray(obj.channels),
        "modality": np.asarray(obj.modality),
    }
    if is_label and obj.label_names:
        payload["label_values"] = np.asarray(list(obj.label_names), dtype=np.int64)
        payload["label_names"] = np.asarray(list(obj.label_names.values()), dtype=str)
    np.savez_compressed(target, **payload)
