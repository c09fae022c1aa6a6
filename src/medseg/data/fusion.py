"""Fusing several raters' label maps into one: STAPLE or majority vote, plus agreement.

Arrays are label maps in medseg order, 2D ``(H, W)`` or 3D ``(Z, Y, X)``, one per rater, all on
the same grid; 0 is background.

- ``staple``: SimpleITK's ``STAPLEImageFilter`` (Warfield et al. 2004) run once per foreground
  label value on the binary masks "rater says this label"; a voxel gets the label whose
  STAPLE probability is >= 0.5 (the highest one if several are), else background.
- ``vote``: SimpleITK's ``LabelVotingImageFilter``: the label most raters gave. **Ties** (two
  or more labels share the highest count, e.g. 1 vs 0 with two raters) **become background
  (0)**: a voxel is foreground only when one label clearly wins.

Agreement per case (:func:`agreement`): the mean pairwise Dice between raters, Fleiss' kappa
over all voxels (categories = label values, background included) and each rater's Dice
against the fused label. Dice of two multi-label maps is the mean over the foreground labels
either map holds (1.0 when both are empty, :func:`medseg.metrics.overlap.dice_from_counts`).
Per label value some rater drew (:func:`class_agreement`): the same two Dice on that value's
masks alone.

:func:`fuse_folders` is the one API behind ``medseg fuse``: one output file per case, with the
first rater's file name (same ending, so the same format), written atomically, and an
agreement CSV.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medseg.errors import InputError
from medseg.io.atomic import atomic_path
from medseg.io.image import LabelMap
from medseg.io.naming import IMAGE_ENDINGS, split_ending
from medseg.metrics.overlap import dice_from_counts

__all__ = [
    "FUSION_METHODS",
    "CaseAgreement",
    "ClassAgreement",
    "FusionResult",
    "agreement",
    "class_agreement",
    "find_rater_cases",
    "fleiss_kappa",
    "fuse_folders",
    "fuse_labels",
    "label_dice",
    "load_rater_case",
    "majority_vote",
    "staple",
]

log = logging.getLogger(__name__)

FUSION_METHODS = ("staple", "vote")
#: STAPLE probability at or above which a voxel takes a label.
STAPLE_THRESHOLD = 0.5


def _check_stack(labels: Sequence[np.ndarray]) -> list[np.ndarray]:
    arrays = [np.asarray(a) for a in labels]
    if len(arrays) < 2:
        raise InputError(f"fusion needs at least 2 raters, got {len(arrays)}")
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise InputError(f"raters' label maps have different shapes {sorted(shapes)}")
    for i, a in enumerate(arrays):
        if a.ndim not in (2, 3):
            raise InputError(f"rater {i + 1}: label map must be 2D or 3D, got shape {a.shape}")
        if not np.issubdtype(a.dtype, np.integer) and a.dtype != bool:
            raise InputError(f"rater {i + 1}: label map must hold integers, got {a.dtype}")
        if a.size and a.min() < 0:
            raise InputError(f"rater {i + 1}: negative label value {a.min()}")
    return arrays


def _out_dtype(arrays: Sequence[np.ndarray]) -> type:
    top = max(int(a.max()) if a.size else 0 for a in arrays)
    return np.uint8 if top <= 255 else np.uint16


def majority_vote(labels: Sequence[np.ndarray]) -> np.ndarray:
    """Per-voxel most frequent label of ``labels`` (each ``(H, W)`` or ``(Z, Y, X)``), by
    SimpleITK's ``LabelVotingImageFilter``; ties become background 0."""
    import SimpleITK as sitk

    arrays = _check_stack(labels)
    if max(int(a.max()) for a in arrays) > np.iinfo(np.uint16).max - 1:
        raise InputError("label values above 65534 are not supported by the vote")
    images = [sitk.GetImageFromArray(a.astype(np.uint16)) for a in arrays]
    voter = sitk.LabelVotingImageFilter()
    voter.SetLabelForUndecidedPixels(0)
    fused = sitk.GetArrayFromImage(voter.Execute(images))
    return fused.astype(_out_dtype(arrays))


@dataclass
class StapleResult:
    """STAPLE output: fused labels, per-label probability maps and rater performance.

    ``probabilities[v]``: float array (grid shape) of P(voxel has label v);
    ``sensitivity[v]`` / ``specificity[v]``: one value per rater, as STAPLE estimated them.
    """

    labels: np.ndarray
    probabilities: dict[int, np.ndarray] = field(default_factory=dict)
    sensitivity: dict[int, tuple[float, ...]] = field(default_factory=dict)
    specificity: dict[int, tuple[float, ...]] = field(default_factory=dict)


def staple(labels: Sequence[np.ndarray], threshold: float = STAPLE_THRESHOLD) -> StapleResult:
    """STAPLE per foreground label (SimpleITK), thresholded at ``threshold``.

    Every label value any rater used is estimated on its own binary masks; a voxel takes the
    label with the highest probability when that probability is >= ``threshold``. A label
    every rater drew identically is taken as drawn (STAPLE is undefined there: a rater with
    no disagreement gives NaN probabilities), as are NaN probabilities in general (they
    fall back to the fraction of raters with the label).
    """
    import SimpleITK as sitk

    arrays = _check_stack(labels)
    values = sorted(set().union(*(np.unique(a).tolist() for a in arrays)) - {0})
    result = StapleResult(labels=np.zeros(arrays[0].shape, dtype=_out_dtype(arrays)))
    best = np.zeros(arrays[0].shape, dtype=np.float64)
    for v in values:
        masks = [(a == v).astype(np.uint8) for a in arrays]
        if all(np.array_equal(masks[0], m) for m in masks[1:]):
            prob = masks[0].astype(np.float64)
            ones = (1.0,) * len(masks)
            result.sensitivity[v], result.specificity[v] = ones, ones
        else:
            f = sitk.STAPLEImageFilter()
            f.SetForegroundValue(1.0)
            prob = sitk.GetArrayFromImage(f.Execute([sitk.GetImageFromArray(m) for m in masks]))
            prob = prob.astype(np.float64)
            bad = ~np.isfinite(prob)
            if bad.any():
                log.warning("STAPLE gave NaN for label %d; using the raters' fraction there", v)
                prob[bad] = np.mean(masks, axis=0)[bad]
            result.sensitivity[v] = tuple(float(s) for s in f.GetSensitivity())
            result.specificity[v] = tuple(float(s) for s in f.GetSpecificity())
        result.probabilities[v] = prob
        wins = (prob >= threshold) & (prob > best)
        result.labels[wins] = v
        best = np.where(wins, prob, best)
    return result


def fuse_labels(labels: Sequence[np.ndarray], method: str = "staple") -> np.ndarray:
    """Fused label map of several raters' maps (``staple`` or ``vote``, module docstring)."""
    if method not in FUSION_METHODS:
        raise InputError(f"unknown fusion method {method!r}; use one of {FUSION_METHODS}")
    return staple(labels).labels if method == "staple" else majority_vote(labels)


def label_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Dice over the foreground labels present in ``a`` or ``b`` (1.0 if both empty)."""
    values = sorted((set(np.unique(a).tolist()) | set(np.unique(b).tolist())) - {0})
    if not values:
        return 1.0
    return float(np.mean([_mask_dice(a == v, b == v) for v in values]))


def fleiss_kappa(labels: Sequence[np.ndarray]) -> float:
    """Fleiss' kappa of the raters over all voxels, categories = label values.

    ``kappa = (P_bar - P_e) / (1 - P_e)``; 1.0 when every rater gives every voxel the same
    single label (``P_e = 1``, chance and observed agreement both perfect).
    """
    arrays = _check_stack(labels)
    n = len(arrays)
    flat = np.stack([a.reshape(-1) for a in arrays])  # (raters, voxels)
    values = np.unique(flat)
    counts = np.stack([(flat == v).sum(axis=0) for v in values])  # (categories, voxels)
    p_cat = counts.sum(axis=1) / counts.sum()
    p_vox = ((counts.astype(np.float64) ** 2).sum(axis=0) - n) / (n * (n - 1))
    p_bar, p_e = float(p_vox.mean()), float((p_cat**2).sum())
    if p_e >= 1.0:
        return 1.0
    return (p_bar - p_e) / (1.0 - p_e)


def _mask_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks (:func:`medseg.metrics.overlap.dice_from_counts`)."""
    inter = int(np.count_nonzero(a & b))
    return dice_from_counts(inter, int(np.count_nonzero(a)), int(np.count_nonzero(b)))


@dataclass(frozen=True)
class ClassAgreement:
    """Agreement on one label value of one case: mean pairwise Dice between the raters'
    masks of that value, and each rater's mask vs the fused one (a pair of empty masks
    scores 1.0, the metrics' rule)."""

    pairwise_dice: float
    dice_vs_fused: tuple[float, ...]


@dataclass(frozen=True)
class CaseAgreement:
    """Agreement of one case: mean pairwise Dice, Fleiss' kappa, Dice of each rater vs fused.

    ``per_class``: label value -> :class:`ClassAgreement`, for every value some rater drew.
    """

    case: str
    pairwise_dice: float
    fleiss_kappa: float
    dice_vs_fused: tuple[float, ...]
    per_class: dict[int, ClassAgreement] = field(default_factory=dict)


def class_agreement(labels: Sequence[np.ndarray], fused: np.ndarray) -> dict[int, ClassAgreement]:
    """Per label value some rater drew: :class:`ClassAgreement` of ``labels`` and ``fused``."""
    arrays = _check_stack(labels)
    values = sorted(set().union(*(np.unique(a).tolist() for a in arrays)) - {0})
    out = {}
    for v in values:
        masks = [a == v for a in arrays]
        f = fused == v
        pairs = [_mask_dice(a, b) for a, b in itertools.combinations(masks, 2)]
        out[int(v)] = ClassAgreement(float(np.mean(pairs)), tuple(_mask_dice(m, f) for m in masks))
    return out


def agreement(case: str, labels: Sequence[np.ndarray], fused: np.ndarray) -> CaseAgreement:
    """:class:`CaseAgreement` of raters' ``labels`` and their ``fused`` map (same grid)."""
    arrays = _check_stack(labels)
    pairs = [label_dice(a, b) for a, b in itertools.combinations(arrays, 2)]
    return CaseAgreement(
        case=case,
        pairwise_dice=float(np.mean(pairs)),
        fleiss_kappa=fleiss_kappa(arrays),
        dice_vs_fused=tuple(label_dice(a, fused) for a in arrays),
        per_class=class_agreement(arrays, fused),
    )


def find_rater_cases(rater_dirs: Sequence[str | Path]) -> dict[str, list[Path]]:
    """Case name -> one label file per rater (in ``rater_dirs`` order).

    A case is a file with an image ending (``.nii.gz``, ``.png``, ...) named by its stem.
    Every rater must have the same cases: otherwise an ``InputError`` names the cases each
    rater lacks.
    """
    if len(rater_dirs) < 2:
        raise InputError(f"fusion needs at least 2 rater folders, got {len(rater_dirs)}")
    per_rater: list[dict[str, Path]] = []
    for d in map(Path, rater_dirs):
        if not d.is_dir():
            raise InputError(f"{d}: no such rater folder")
        cases: dict[str, Path] = {}
        for f in sorted(d.iterdir()):
            parts = split_ending(f.name, IMAGE_ENDINGS)
            if f.name.startswith(".") or not f.is_file() or parts is None:
                continue
            if parts[0] in cases:
                raise InputError(f"{d}: case {parts[0]} has two files ({cases[parts[0]].name}, "
                                 f"{f.name})")  # fmt: skip
            cases[parts[0]] = f
        if not cases:
            raise InputError(f"{d}: no label files with a supported ending")
        per_rater.append(cases)
    union = set().union(*per_rater)
    problems = [
        f"{d} lacks {', '.join(sorted(union - set(c)))}"
        for d, c in zip(rater_dirs, per_rater, strict=True)
        if union - set(c)
    ]
    if problems:
        raise InputError("raters have different cases: " + "; ".join(problems))
    return {case: [c[case] for c in per_rater] for case in sorted(union)}


@dataclass
class FusionResult:
    """What :func:`fuse_folders` wrote: fused files, agreement rows, the CSV path."""

    method: str
    raters: tuple[str, ...]
    written: list[Path]
    rows: list[CaseAgreement]
    csv_path: Path | None

    def table(self) -> str:
        """The agreement table as CSV text (the same text the CSV file holds)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(
            ["case", "method", "pairwise_dice", "fleiss_kappa"]
            + [f"dice_{r}_vs_fused" for r in self.raters]
        )
        for r in self.rows:
            w.writerow(
                [r.case, self.method, f"{r.pairwise_dice:.4f}", f"{r.fleiss_kappa:.4f}"]
                + [f"{d:.4f}" for d in r.dice_vs_fused]
            )
        return buf.getvalue()


def _rater_names(rater_dirs: Sequence[Path]) -> tuple[str, ...]:
    names = [d.name or str(d) for d in rater_dirs]
    if len(set(names)) < len(names):
        names = [f"{n}{i + 1}" for i, n in enumerate(names)]
    return tuple(names)


def load_rater_case(case: str, files: Sequence[Path]) -> list[LabelMap]:
    """The raters' label maps of ``case`` (one file each), checked to share one grid.

    Raises:
        InputError: naming the case and both files, when shapes or geometry differ.
    """
    from medseg.io.readers import load_label

    maps = [load_label(f) for f in files]
    first = maps[0]
    for f, m in zip(files[1:], maps[1:], strict=True):
        if m.shape != first.shape:
            raise InputError(
                f"case {case}: raters' label maps have different grids: {files[0]} has shape "
                f"{first.shape}, {f} has shape {m.shape}"
            )
        if not m.same_geometry(first):
            raise InputError(
                f"case {case}: raters' label maps have different grids: {files[0]} "
                f"(spacing {first.spacing}, origin {first.origin}) vs {f} (spacing {m.spacing}, "
                f"origin {m.origin}, shape {m.shape})"
            )
    return maps


def fuse_folders(
    rater_dirs: Sequence[str | Path],
    out_dir: str | Path,
    method: str = "staple",
    *,
    csv_path: str | Path | None = None,
) -> FusionResult:
    """Fuse every case of several rater folders into ``out_dir`` (same file names).

    All cases are checked (same case set, same grid per case) before anything is written.
    ``csv_path`` defaults to ``out_dir/agreement.csv``.
    """
    if method not in FUSION_METHODS:
        raise InputError(f"unknown fusion method {method!r}; use one of {FUSION_METHODS}")
    dirs = [Path(d).expanduser() for d in rater_dirs]
    out_dir = Path(out_dir).expanduser()
    if any(out_dir.resolve() == d.resolve() for d in dirs if d.exists()):
        raise InputError(f"{out_dir}: the output folder is a rater folder; choose another one")
    cases = find_rater_cases(dirs)
    for case, files in cases.items():  # validate every grid before writing anything
        load_rater_case(case, files)
    from medseg.io.writers import save

    written, rows = [], []
    for case, files in cases.items():
        maps = load_rater_case(case, files)
        arrays = [m.array for m in maps]
        fused = fuse_labels(arrays, method)
        names = {k: v for m in maps for k, v in m.label_names.items()}
        target = out_dir / files[0].name
        save(LabelMap.like(maps[0], fused, label_names=names), target)
        written.append(target)
        rows.append(agreement(case, arrays, fused))
        log.info("%s: %s of %d raters -> %s", case, method, len(files), target)
    result = FusionResult(method, _rater_names(dirs), written, rows, None)
    result.csv_path = Path(csv_path) if csv_path is not None else out_dir / "agreement.csv"
    with atomic_path(result.csv_path) as tmp:
        tmp.write_text(result.table())
    return result
