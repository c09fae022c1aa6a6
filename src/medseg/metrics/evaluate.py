"""Evaluate prediction files against reference files: matching, geometry checks, outputs.

Used by ``medseg evaluate``; also callable from Python::

    result = evaluate_paths("preds/", "labels/", EvaluationConfig(nsd_tolerance_mm=1.0))
    write_csv(result.rows, "metrics.csv"); write_json(result.summary, "summary.json")

Label names: ``EvaluationConfig.label_names`` (e.g. from ``load_label_names`` of a JSON
file) win over the names the label files carry (reference over prediction), which win over
none.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.io.atomic import atomic_path
from medseg.io.image import LabelMap
from medseg.io.naming import case_stem, split_ending
from medseg.metrics.accumulate import MetricAccumulator
from medseg.metrics.case import EMPTY_MASK_RULES, METRICS, evaluate_case

__all__ = [
    "CSV_COLUMNS",
    "CaseMatch",
    "EvaluationConfig",
    "EvaluationResult",
    "case_stem",
    "check_geometry",
    "evaluate_paths",
    "load_label_names",
    "match_cases",
    "write_csv",
    "write_json",
]

log = logging.getLogger(__name__)

# Companion data files of .mhd/.nhdr headers: not cases, skipped without a warning.
_COMPANIONS = (".raw", ".zraw", ".raw.gz")

CSV_COLUMNS = (
    "case",
    "label",
    "name",
    *METRICS,
    "pred_voxels",
    "gt_voxels",
    "pred_empty",
    "gt_empty",
    "cap_mm",
)


@dataclass(frozen=True)
class EvaluationConfig:
    """Settings of one evaluation (written into the JSON summary).

    Attributes:
        labels: label values to score; ``None`` = per case, the union of non-zero labels of
            prediction and reference.
        nsd_tolerance_mm: NSD tolerance in mm.
        allow_missing: score a reference case without a prediction as an empty prediction
            (otherwise it is an error).
        geometry_atol: largest allowed difference of spacing/origin (mm) and direction cosines
            between a prediction and its reference.
        label_names: ``(value, name)`` pairs (a ``{value: name}`` mapping is converted);
            they override the names stored in the label files.
    """

    labels: tuple[int, ...] | None = None
    nsd_tolerance_mm: float = 2.0
    allow_missing: bool = False
    geometry_atol: float = 1e-3
    label_names: tuple[tuple[int, str], ...] = ()

    def __post_init__(self) -> None:
        if not (math.isfinite(self.nsd_tolerance_mm) and self.nsd_tolerance_mm >= 0):
            raise InputError(f"NSD tolerance must be >= 0 mm, got {self.nsd_tolerance_mm}")
        if not (math.isfinite(self.geometry_atol) and self.geometry_atol >= 0):
            raise InputError(f"geometry tolerance must be >= 0, got {self.geometry_atol}")
        if self.labels is not None:
            labels = tuple(int(v) for v in self.labels)
            if not labels or any(v <= 0 for v in labels):
                raise InputError(f"labels must be positive integers, got {list(self.labels)}")
            object.__setattr__(self, "labels", labels)
        pairs = self.label_names.items() if isinstance(self.label_names, dict) else self.label_names
        names = tuple(sorted((int(v), str(n)) for v, n in pairs))
        object.__setattr__(self, "label_names", names)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the settings."""
        d = asdict(self)
        d["labels"] = None if self.labels is None else list(self.labels)
        d["label_names"] = {str(v): n for v, n in self.label_names}
        return d


@dataclass(frozen=True)
class CaseMatch:
    """Reference cases paired with predictions (``pred`` is None when missing)."""

    pairs: list[tuple[str, Path | None, Path]]
    missing_predictions: list[str] = field(default_factory=list)
    unmatched_predictions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EvaluationResult:
    """Per-case rows (see :func:`medseg.metrics.evaluate_case`) and the JSON summary."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any]


def _list_cases(folder: Path) -> dict[str, Path]:
    cases: dict[str, Path] = {}
    skipped = []
    for p in sorted(folder.iterdir()):
        low = p.name.lower()
        if p.name.startswith(".") or low.endswith(_COMPANIONS):
            continue
        if not p.is_file() or split_ending(p.name) is None:
            skipped.append(p.name)
            continue
        stem = case_stem(p)
        if stem in cases:
            raise InputError(f"{folder}: two files for case {stem!r}: {cases[stem].name}, {p.name}")
        cases[stem] = p
    if skipped:
        log.warning(
            "%s: ignored %d entries that are not label files: %s",
            folder,
            len(skipped),
            ", ".join(skipped),
        )
    return cases


def match_cases(pred: Path, gt: Path) -> CaseMatch:
    """Pair two files, or the files of two folders by case name (:func:`case_stem`).

    Raises:
        InputError: a path does not exist, one is a file and the other a folder, or the
            reference folder holds no label files.
    """
    for p, what in ((pred, "prediction"), (gt, "reference")):
        if not p.exists():
            raise InputError(f"{p}: {what} path does not exist")
    if pred.is_file() and gt.is_file():
        return CaseMatch(pairs=[(case_stem(gt), pred, gt)])
    if not (pred.is_dir() and gt.is_dir()):
        raise InputError(f"give two files or two folders, got {pred} and {gt}")
    preds, gts = _list_cases(pred), _list_cases(gt)
    if not gts:
        raise InputError(f"{gt}: no label files found")
    pairs = [(c, preds.get(c), gts[c]) for c in sorted(gts)]
    return CaseMatch(
        pairs=pairs,
        missing_predictions=[c for c in sorted(gts) if c not in preds],
        unmatched_predictions=[c for c in sorted(preds) if c not in gts],
    )


def check_geometry(pred: LabelMap, gt: LabelMap, atol: float = 1e-3) -> None:
    """Raise :class:`InputError` naming the prediction file and what differs from ``gt``.

    Shapes must be equal; spacing, origin (mm) and direction cosines within ``atol``.
    """
    where = pred.meta.get("path", "prediction")
    if pred.shape != gt.shape:
        raise InputError(f"{where}: shape {pred.shape} differs from reference shape {gt.shape}")
    for name in ("spacing", "origin", "direction"):
        a, b = np.asarray(getattr(pred, name)), np.asarray(getattr(gt, name))
        if not np.allclose(a, b, atol=atol, rtol=0):
            raise InputError(
                f"{where}: {name} {np.round(a, 6).tolist()} differs from reference "
                f"{np.round(b, 6).tolist()} (tolerance {atol})"
            )


def _load_pair(pred_path: Path | None, gt_path: Path, atol: float) -> tuple[LabelMap, LabelMap]:
    from medseg.io import load_label

    gt = load_label(gt_path)
    if pred_path is None:
        return LabelMap.like(gt, np.zeros(gt.shape, np.uint8)), gt
    pred = load_label(pred_path)
    check_geometry(pred, gt, atol)
    return pred, gt


def evaluate_paths(
    pred: str | os.PathLike[str], gt: str | os.PathLike[str], config: EvaluationConfig
) -> EvaluationResult:
    """Evaluate a prediction file/folder against a reference file/folder.

    Returns:
        :class:`EvaluationResult` with one row per (case, label) and the summary dict
        (config, case lists, per-class and overall statistics).

    Raises:
        InputError: missing predictions (unless ``config.allow_missing``), unreadable files,
            or a geometry mismatch.
    """
    from tqdm import tqdm

    match = match_cases(Path(pred), Path(gt))
    if match.missing_predictions and not config.allow_missing:
        raise InputError(
            f"no prediction for {len(match.missing_predictions)} reference case(s): "
            f"{', '.join(match.missing_predictions)} (use --allow-missing to score them as empty)"
        )
    for what, cases in (
        ("reference cases scored as empty predictions", match.missing_predictions),
        ("predictions without a reference (not scored)", match.unmatched_predictions),
    ):
        if cases:
            log.warning("%d %s: %s", len(cases), what, ", ".join(cases))
    rows: list[dict[str, Any]] = []
    acc = MetricAccumulator(METRICS)
    for case, pred_path, gt_path in tqdm(
        match.pairs, desc="evaluate", unit="case", disable=len(match.pairs) < 2
    ):
        p, g = _load_pair(pred_path, gt_path, config.geometry_atol)
        case_rows = evaluate_case(
            p, g, labels=config.labels, nsd_tolerance=config.nsd_tolerance_mm, case=case
        )
        if config.label_names:
            names = dict(config.label_names)
            for row in case_rows:
                row["name"] = names.get(row["label"], row["name"])
        acc.add(case_rows)
        rows.extend(case_rows)
    return EvaluationResult(rows=rows, summary=_summary(acc, match, config))


def load_label_names(path: str | os.PathLike[str]) -> dict[int, str]:
    """Label names from a JSON file: ``{"1": "spleen", ...}``, or an nnU-Net ``dataset.json``.

    In ``dataset.json`` the ``labels`` map is ``{"spleen": 1, ...}`` (nnU-Net v2, name ->
    value) or ``{"1": "spleen"}`` (v1, value -> name); the direction is detected from the
    value types. Region-based v2 labels (lists of values) are rejected.

    Raises:
        InputError: naming the file: missing, not JSON, or not one of these layouts.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except OSError as exc:
        raise InputError(f"{p}: cannot read label names ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise InputError(f"{p}: not valid JSON ({exc})") from exc
    if isinstance(data, dict) and isinstance(data.get("labels"), dict):
        data = data["labels"]
    if not isinstance(data, dict) or not data:
        raise InputError(f'{p}: expected {{"1": "name", ...}} or a dataset.json with labels')
    try:
        if all(isinstance(v, str) for v in data.values()):
            return {int(k): v for k, v in data.items()}
        if all(isinstance(v, int) and not isinstance(v, bool) for v in data.values()):
            return {v: str(k) for k, v in data.items()}
    except ValueError:
        pass
    if any(isinstance(v, list) for v in data.values()):
        raise InputError(f"{p}: region-based labels (lists of values) have no single label value")
    raise InputError(
        f'{p}: labels must map values to names ({{"1": "spleen"}}) or names to integer '
        f'values ({{"spleen": 1}}), got {json.dumps(data)[:80]}'
    )


def _summary(acc: MetricAccumulator, match: CaseMatch, config: EvaluationConfig) -> dict:
    from medseg._version import __version__

    stats = acc.aggregate()
    return {
        "medseg_version": __version__,
        "config": {
            **config.to_dict(),
            "metrics": list(METRICS),
            "hd_percentile": 95,
            "percentile_method": "linear interpolation (torch.quantile), max of both directions",
            "nsd_surface": "sub-voxel surface elements (MONAI use_subvoxels=True)",
            "std": "population (ddof=0)",
            "empty_mask_rules": EMPTY_MASK_RULES,
        },
        "n_cases": len(match.pairs),
        "cases": [c for c, _, _ in match.pairs],
        "missing_predictions": match.missing_predictions,
        "unmatched_predictions": match.unmatched_predictions,
        "per_class": stats["per_class"],
        "overall": stats["overall"],
    }


def _jsonable(obj: Any) -> Any:
    """Replace NaN/inf by None (strict JSON has neither) and make keys strings."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(summary: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the summary as strict JSON (non-finite numbers become ``null``), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(summary), indent=2, allow_nan=False) + "\n")
    return Path(path)


def write_csv(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write one line per (case, label) with :data:`CSV_COLUMNS`, atomically.

    Infinite distances are written as ``inf``; flags as ``0``/``1``.
    """
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            out = dict(row)
            for flag in ("pred_empty", "gt_empty"):
                out[flag] = int(bool(row.get(flag)))
            for m in (*METRICS, "cap_mm"):
                out[m] = float(row[m]) if m in row else ""  # full precision; inf as "inf"
            writer.writerow(out)
    return Path(path)
