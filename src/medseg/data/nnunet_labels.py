"""The ``labels`` and ``partial_labels`` entries of an nnU-Net ``dataset.json``.

``labels`` maps class names to integer values (background 0 included); ``partial_labels``
(a medseg extension) maps a case id to the foreground class names its label annotates.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from medseg.errors import InputError

if TYPE_CHECKING:
    from medseg.data.nnunet import NnunetDataset

__all__ = ["parse_labels", "parse_partial", "annotated_classes"]


def parse_labels(raw: Any, path: Path) -> dict[str, int]:
    """``dataset.json`` ``labels``: class name -> integer value (background 0 required)."""
    if not isinstance(raw, dict) or not raw:
        raise InputError(f"{path}: 'labels' must be a non-empty mapping name -> value")
    labels: dict[str, int] = {}
    for name, value in raw.items():
        if name == "ignore":
            raise InputError(f"{path}: the 'ignore' label is not supported by medseg auto")
        if isinstance(value, list | tuple):
            raise InputError(
                f"{path}: region-based label {name!r}: {value} is not supported; "
                "give each label one integer value"
            )
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InputError(
                f"{path}: label {name!r} must be a non-negative integer, got {value!r}"
            )
        labels[str(name)] = int(value)
    if 0 not in labels.values():
        raise InputError(f"{path}: 'labels' must contain background with value 0")
    if len(set(labels.values())) != len(labels):
        raise InputError(f"{path}: two label names share one value: {labels}")
    return labels


def parse_partial(
    raw: Any, labels: dict[str, int], case_ids: set[str], path: Path
) -> dict[str, tuple[str, ...]]:
    """``dataset.json`` ``partial_labels``: case id -> annotated foreground class names."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputError(f"{path}: 'partial_labels' must be a mapping case id -> [class names]")
    out: dict[str, tuple[str, ...]] = {}
    for case_id, names in raw.items():
        if case_id not in case_ids:
            raise InputError(
                f"{path}: partial_labels names case {case_id!r}, which is not a training case "
                "in imagesTr"
            )
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise InputError(f"{path}: partial_labels[{case_id!r}] must be a list of class names")
        for name in names:
            if name not in labels:
                raise InputError(
                    f"{path}: partial_labels[{case_id!r}] names class {name!r}, which is not in "
                    f"'labels' {sorted(labels)}"
                )
        fg = tuple(dict.fromkeys(n for n in names if labels[n] != 0))
        if not fg:
            raise InputError(f"{path}: partial_labels[{case_id!r}] annotates no foreground class")
        out[str(case_id)] = fg
    return out


def annotated_classes(
    dataset: NnunetDataset, case_id: str, label_values: tuple[int, ...]
) -> list[bool]:
    """Which classes case ``case_id`` annotates, one bool per entry of ``label_values``
    (class index order; background is always True, so are all classes of a full case)."""
    names = dataset.partial_labels.get(case_id)
    if names is None:
        return [True] * len(label_values)
    values = {dataset.labels[n] for n in names} | {0}
    return [v in values for v in label_values]
