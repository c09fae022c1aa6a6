"""NumPy ``.npy`` / ``.npz`` files.

- ``.npy`` holds one array and no geometry. A 3D array whose last axis has 3 or 4 entries
  and dtype uint8 is read as a 2D RGB(A) image ``(H, W, C)``; every other 3D array is a
  volume ``(Z, Y, X)``.
- ``.npz``: the array is ``key`` when given, else key ``image``, ``array`` or ``label``
  (first found), else the only array in the file. Files with several arrays and none of
  those keys (MedMNIST: ``train_images``, ``train_labels``, ``val_images``, ...) need
  ``key``; ``npz_arrays`` lists their keys, shapes and dtypes without reading the data.
  Optional keys written by ``save``: ``spacing`` (array order), ``origin``, ``direction``
  (ITK/LPS), ``channels`` (bool), ``modality`` (str), and for label maps ``label_values`` +
  ``label_names``.
- ``index`` picks one sample along the first axis of a stacked array (``.npy`` or the
  chosen ``.npz`` array): ``(N, H, W[, C])`` -> ``(H, W[, C])``, ``(N, Z, Y, X)`` ->
  ``(Z, Y, X)``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.io.image import Image, LabelMap

__all__ = ["read_array_file", "write_array_file", "npz_arrays", "npz_needs_key", "ARRAY_KEYS"]

#: Keys that ``.npz`` reading takes as the image array, in order of preference.
ARRAY_KEYS = ("image", "array", "label")
_GEOMETRY_KEYS = ("spacing", "origin", "direction", "channels", "modality",
                  "label_values", "label_names")  # fmt: skip


def read_array_file(
    path: Path,
    fmt: str,
    *,
    modality: str | None = None,
    key: str | None = None,
    index: int | None = None,
) -> Image:
    """Read ``.npy``/``.npz`` as an ``Image`` (geometry from ``.npz`` keys when present).

    ``key`` names the ``.npz`` array to read; ``index`` picks one sample along the first
    axis of the array (see the module docstring). Errors name ``path``.
    """
    if key is not None and fmt != "npz":
        raise InputError(f"{path}: key= / --key only applies to NPZ files, this is {fmt}")
    extra: dict[str, Any] = {}
    try:
        if fmt == "npy":
            arr = np.load(path, allow_pickle=False)
        else:
            arr, extra = _read_npz(path, key)
    except InputError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: cannot read {fmt.upper()} ({exc})") from exc
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise InputError(
            f"{path}: expected a numeric array, got dtype {getattr(arr, 'dtype', '?')}"
        )
    meta: dict[str, Any] = {"path": str(path), "format": fmt}
    if key is not None:
        meta["npz_key"] = key
    if index is not None:
        arr = _pick(arr, index, path)
        meta["index"] = index
    return _to_image(arr, extra, meta, modality, path)


def _pick(arr: np.ndarray, index: int, path: Path) -> np.ndarray:
    """Sample ``index`` along axis 0 of ``arr`` (negative counts from the end)."""
    if arr.ndim < 3:
        raise InputError(
            f"{path}: index= / --index picks a sample of a stacked array, but the array has "
            f"shape {arr.shape}"
        )
    n = arr.shape[0]
    if not -n <= index < n:
        raise InputError(f"{path}: index {index} is out of range for {n} samples (0..{n - 1})")
    return np.ascontiguousarray(arr[index])


def _to_image(
    arr: np.ndarray, extra: dict[str, Any], meta: dict[str, Any], modality: str | None, path: Path
) -> Image:
    if "channels" in extra:
        channels = bool(extra["channels"])
    else:
        channels = arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.dtype == np.uint8
    spatial = arr.ndim - (1 if channels else 0)
    if spatial not in (2, 3):
        hint = ""
        if spatial == 4:
            hint = " (4D: time series or stacked channels are not supported"
            hint += "; pick one sample with index= / --index N)" if "index" not in meta else ")"
        raise InputError(f"{path}: array of shape {arr.shape} is not a 2D image or 3D volume{hint}")
    if "label_values" in extra:
        meta["label_names"] = dict(zip(extra["label_values"], extra["label_names"], strict=True))
    default = "RGB" if channels and arr.shape[-1] in (3, 4) and spatial == 2 else "unknown"
    try:
        return Image(
            array=arr,
            spacing=tuple(extra.get("spacing", ())),
            origin=tuple(extra.get("origin", ())),
            direction=extra.get("direction"),
            channels=channels,
            modality=modality or extra.get("modality") or default,
            meta=meta,
        )
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from exc


def npz_arrays(path: str | Path) -> list[dict[str, Any]]:
    """Key, shape and dtype of every array in an ``.npz`` file, in file order.

    Reads only the ``.npy`` headers inside the archive, not the data. Returns a list of
    ``{"key": str, "shape": [int, ...], "dtype": str}``.
    """
    p = Path(path)
    out = []
    try:
        with zipfile.ZipFile(p) as zf:
            for name in zf.namelist():
                if not name.endswith(".npy"):
                    continue
                with zf.open(name) as fh:
                    fmt = np.lib.format
                    v1 = fmt.read_magic(fh) == (1, 0)
                    header = fmt.read_array_header_1_0 if v1 else fmt.read_array_header_2_0
                    shape, _, dtype = header(fh)
                out.append({"key": name[:-4], "shape": list(shape), "dtype": str(dtype)})
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{p}: cannot read NPZ ({exc})") from exc
    return out


def npz_needs_key(keys: list[str]) -> bool:
    """True when an ``.npz`` with these keys has no default image array (``key`` needed)."""
    if any(k in keys for k in ARRAY_KEYS):
        return False
    return len([k for k in keys if k not in _GEOMETRY_KEYS]) != 1


def _choose_key(path: Path, keys: list[str], key: str | None) -> str:
    if key is not None:
        if key not in keys:
            raise InputError(f"{path}: NPZ has no array {key!r}; its keys are {keys}")
        return key
    if not npz_needs_key(keys):
        found = next((k for k in ARRAY_KEYS if k in keys), None)
        return found or next(k for k in keys if k not in _GEOMETRY_KEYS)
    listing = ", ".join(f"{a['key']} {tuple(a['shape'])} {a['dtype']}" for a in npz_arrays(path))
    raise InputError(
        f"{path}: NPZ has several arrays ({listing}) and none is named "
        f"{' / '.join(ARRAY_KEYS)}; pick one with --key NAME (Python: key=NAME), and one "
        "sample of a stacked array with --index N (index=N)"
    )


def _read_npz(path: Path, key: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    with np.load(path, allow_pickle=False) as npz:
        keys = list(npz.files)
        key = _choose_key(path, keys, key)
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
