"""The ``params`` JSON part of a MONAI Label ``/infer`` request.

MONAI Label clients send clicks as voxel indices ``[i, j, k]`` of the image they uploaded
(3D Slicer: ``RASToIJK`` of the volume node, rounded; OHIF: cornerstone's world-to-index),
i.e. ITK index order: ``i`` = column, ``j`` = row, ``k`` = slice. That is medseg's point
order ``(x, y, z)`` on an array ``(Z, Y, X)``, so a click ``[i, j, k]`` is the voxel
``array[k, j, i]``. 2D images take ``[x, y]`` or ``[x, y, 0]``.

A box prompt is MONAI Label's SAM2 ``roi``: ``[i0, j0, i1, j1]`` on the slice of the clicks
(or ``slice``), or ``[i0, j0, i1, j1, k0, k1]`` for a volume (the slice in the middle of
``k0..k1`` unless clicks name one; ``deepedit`` propagates only within ``k0..k1``).

Two styles are understood:

- deepgrow: ``{"foreground": [[i, j, k], ...], "background": [...], "label": "spleen"}``,
  one object (value 1, named ``label`` or ``"foreground"``), with the ``roi`` box if given;
- deepedit: one key per label name with that label's foreground clicks,
  ``{"spleen": [[...]], "liver": [[...]], "background": [[...]], "label_names":
  {"spleen": 1, "liver": 2}}``; ``background`` clicks are negative for every label, and
  values come from ``label_names`` (else 1, 2, ... in key order); a ``roi`` box belongs to
  the object named by ``label`` (else the first).

Text prompts (models whose ``/info/`` entry has ``"text": true``): ``"text": "liver"`` or
``"text": ["liver", "spleen"]`` (one label per phrase, values 1..n, named by the phrase),
alone or with one object's clicks (one phrase only), which correct the text mask; the
phrases themselves are checked by :meth:`medseg.Predictor.predict`.

Other keys MONAI Label clients send (``client_id``, ``label``, ``result_extension``,
``result_dtype``, ``result_compress``, ``restore_label_idx``, model config) are read where
they matter and otherwise ignored.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from medseg.errors import InputError, PromptError

__all__ = ["ClickObject", "InferParams", "parse_params", "RESULT_EXTENSIONS"]

#: Result file extensions the server writes (``result_extension``).
RESULT_EXTENSIONS = (".nii.gz", ".nii", ".nrrd")
_DTYPES = {"uint8": np.uint8, "uint16": np.uint16}
_RESERVED = {
    "foreground", "background", "label", "label_names", "client_id", "result_extension",
    "result_dtype", "result_compress", "restore_label_idx", "device", "model", "image",
    "session", "largest_cc", "pipeline", "cache_transforms", "label_info", "roi", "slice",
    "text",
}  # fmt: skip
_MAX_CLICKS = 1000
_MAX_PHRASES = 16
_MAX_PHRASE_CHARS = 200


@dataclass(frozen=True)
class ClickObject:
    """One object to segment: its label ``name`` and ``value`` in the result, its
    foreground / background clicks, each ``(P, 3)`` int ``(x, y, z)`` (z = 0 in 2D), and
    an optional box ``(x0, y0, x1, y1)`` with its slice range ``(z0, z1)`` (None: the
    slice of the clicks / ``slice``)."""

    name: str
    value: int
    foreground: np.ndarray
    background: np.ndarray
    box: tuple[float, float, float, float] | None = None
    box_z: tuple[int, int] | None = None
    slice: int | None = None

    @property
    def prompted(self) -> bool:
        """True when the object has a foreground click or a box."""
        return bool(len(self.foreground)) or self.box is not None


@dataclass(frozen=True)
class InferParams:
    """A parsed ``params`` part: the objects (empty = no clicks), result file format and
    the text prompt's phrases (empty = none)."""

    objects: tuple[ClickObject, ...]
    extension: str = ".nii.gz"
    dtype: Any = np.uint8
    compress: bool = True
    raw: dict[str, Any] | None = None
    text: tuple[str, ...] = ()


def _clicks(value: Any, what: str, ndim: int) -> np.ndarray:
    """``[[i, j, k], ...]`` -> ``(P, 3)`` int array ``(x, y, z)``; raises ``PromptError``."""
    if value is None:
        return np.zeros((0, 3), np.int64)
    if not isinstance(value, list) or len(value) > _MAX_CLICKS:
        raise PromptError(f"{what} must be a list of at most {_MAX_CLICKS} [i, j, k] clicks")
    out = []
    for click in value:
        ok = isinstance(click, list) and len(click) in (ndim, 3) and len(click) >= 2
        ok = ok and all(isinstance(c, int | float) and not isinstance(c, bool) for c in click)
        if not ok or not all(math.isfinite(c) for c in click):
            raise PromptError(f"{what}: a click must be [i, j, k] voxel indices, got {click!r}")
        xyz = [round(c) for c in click] + [0] * (3 - len(click))
        out.append(xyz)
    return np.asarray(out, np.int64).reshape(-1, 3)


def _label_names(raw: dict[str, Any]) -> dict[str, int]:
    names = raw.get("label_names") or {}
    if not isinstance(names, dict):
        raise InputError("label_names must be an object {name: value}")
    out: dict[str, int] = {}
    for name, value in names.items():
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
            raise InputError(f"label_names[{name!r}] must be an integer 0..65535, got {value!r}")
        out[str(name)] = value
    return out


def _box(raw: dict[str, Any]) -> tuple[tuple[float, ...] | None, tuple[int, int] | None]:
    """``roi`` -> (box ``(x0, y0, x1, y1)``, slice range ``(z0, z1)`` or None)."""
    roi = raw.get("roi")
    if roi is None or roi == []:
        return None, None
    ok = isinstance(roi, list) and len(roi) in (4, 6)
    ok = ok and all(isinstance(c, int | float) and not isinstance(c, bool) for c in roi)
    if not ok or not all(math.isfinite(c) for c in roi):
        raise PromptError(f"roi must be [i0, j0, i1, j1] or [i0, j0, i1, j1, k0, k1], got {roi!r}")
    x0, y0, x1, y1 = (float(c) for c in roi[:4])
    if x1 <= x0 or y1 <= y0:
        raise PromptError(f"roi {roi!r} is empty: need i0 < i1 and j0 < j1")
    if len(roi) == 4:
        return (x0, y0, x1, y1), None
    z0, z1 = round(roi[4]), round(roi[5])
    if z1 < z0:
        raise PromptError(f"roi {roi!r}: k0 must not be larger than k1")
    return (x0, y0, x1, y1), (z0, z1)


def _slice(raw: dict[str, Any]) -> int | None:
    value = raw.get("slice")
    if value is None or (isinstance(value, int) and value < 0):  # MONAI Label: -1 = none
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise PromptError(f"slice must be a slice index (integer), got {value!r}")
    return value


def _objects(raw: dict[str, Any], ndim: int) -> tuple[ClickObject, ...]:
    """The objects of a deepgrow-style (``foreground``) or deepedit-style (clicks per label
    name) ``params``; raises ``PromptError`` / ``InputError`` for malformed ones."""
    background = _clicks(raw.get("background"), "background", ndim)
    names = _label_names(raw)
    box, box_z = _box(raw)
    where = {"box": box, "box_z": box_z, "slice": _slice(raw)}
    if "foreground" in raw or ("label" not in raw and box is not None):
        name = str(raw.get("label") or "foreground")
        value = names.get(name, 1) or 1
        fg = _clicks(raw.get("foreground"), "foreground", ndim)
        return (ClickObject(name, value, fg, background, **where),)
    objects = []
    keyed = [k for k, v in raw.items() if k not in _RESERVED and isinstance(v, list)]
    owner = str(raw["label"]) if raw.get("label") in keyed else (keyed[0] if keyed else None)
    for i, name in enumerate(keyed, start=1):
        if names.get(name) == 0:
            continue  # a "background"-valued label: its clicks are negatives already
        value = names.get(name, i)
        extra = where if name == owner else {"slice": where["slice"]}
        objects.append(ClickObject(name, value, _clicks(raw[name], name, ndim), background,
                                   **extra))  # fmt: skip
    if box is not None and owner is None:
        name = str(raw.get("label") or "foreground")
        objects.append(ClickObject(name, names.get(name, 1) or 1, np.zeros((0, 3), np.int64),
                                   background, **where))  # fmt: skip
    values = [o.value for o in objects]
    if len(set(values)) != len(values):
        raise InputError(f"label values {values} are not unique; fix label_names")
    return tuple(objects)


def _text(raw: dict[str, Any]) -> tuple[str, ...]:
    """``text``: a phrase or a list of phrases -> tuple of phrases (``()`` when absent);
    raises ``InputError`` for other JSON types, too many, too long or repeated phrases."""
    value = raw.get("text")
    if value is None:
        return ()
    phrases = [value] if isinstance(value, str) else value
    if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
        raise InputError(f"text must be a phrase or a list of phrases (strings), e.g. "
                         f'"liver" or ["liver", "spleen"]; got {type(value).__name__}')  # fmt: skip
    if not 1 <= len(phrases) <= _MAX_PHRASES:
        raise InputError(f"text must hold 1 to {_MAX_PHRASES} phrases, got {len(phrases)}")
    for phrase in phrases:
        if len(phrase) > _MAX_PHRASE_CHARS:
            raise InputError(f"text phrase {phrase[:40]!r}... is longer than "
                             f"{_MAX_PHRASE_CHARS} characters")  # fmt: skip
    if len(set(phrases)) != len(phrases):
        raise InputError(f"text phrases {phrases} repeat; give each target once")
    return tuple(phrases)


def _result_format(raw: dict[str, Any]) -> tuple[str, Any, bool]:
    ext = str(raw.get("result_extension") or ".nii.gz").lower()
    if ext not in RESULT_EXTENSIONS:
        raise InputError(f"result_extension {ext!r} is not supported; use one of "
                         f"{', '.join(RESULT_EXTENSIONS)}")  # fmt: skip
    dtype_name = str(raw.get("result_dtype") or "uint8").lower()
    if dtype_name not in _DTYPES:
        raise InputError(f"result_dtype {dtype_name!r} is not supported; use uint8 or uint16")
    compress = raw.get("result_compress")
    return ext, _DTYPES[dtype_name], ext != ".nrrd" if compress is None else bool(compress)


def parse_params(text: str | None, ndim: int) -> InferParams:
    """Parse the ``params`` form field (JSON object) for an image with ``ndim`` dimensions.

    Raises ``InputError`` (HTTP 400) for malformed JSON, options or ``text`` and
    ``PromptError`` (HTTP 422) for malformed clicks.
    """
    try:
        raw = json.loads(text or "{}")
    except ValueError as exc:
        raise InputError(f"params is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise InputError(f"params must be a JSON object, got {type(raw).__name__}")
    ext, dtype, compress = _result_format(raw)
    text = _text(raw)
    return InferParams(_objects(raw, ndim), ext, dtype, compress, raw, text)
