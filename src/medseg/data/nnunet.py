"""nnU-Net v2 raw dataset layout: read it, check it, and convert plain folders into it.

Layout (read as is, so existing nnU-Net datasets work unchanged)::

    DATA/dataset.json                 {"channel_names": {"0": "CT"}, "labels": {"background": 0,
                                       ...}, "numTraining": N, "file_ending": ".nii.gz"}
    DATA/imagesTr/CASE_0000.nii.gz    one file per channel (_0000, _0001, ...)
    DATA/labelsTr/CASE.nii.gz         integer labels on the image grid
    DATA/imagesTs/CASE_0000.nii.gz    optional unlabelled cases

2D datasets use PNG (or TIFF) files; an RGB PNG holds three channels in one file, so the
channel count of a case is the sum of the channels of its files. Arrays follow medseg's axis
conventions (2D ``(H, W[, C])``, 3D ``(Z, Y, X[, C])``).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medseg.data.nnunet_labels import annotated_classes, parse_labels, parse_partial
from medseg.errors import InputError
from medseg.io.image import Image, LabelMap
from medseg.io.naming import DATASET_ENDINGS, split_channel, split_ending

__all__ = [
    "CaseFiles",
    "NnunetDataset",
    "Issue",
    "read_dataset",
    "load_case",
    "check_dataset",
    "format_issues",
    "annotated_classes",
    "image_case_ids",
    "read_dataset_json",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case: one image file per channel group, and an optional label."""

    case_id: str
    images: tuple[Path, ...]
    label: Path | None = None


@dataclass(frozen=True)
class NnunetDataset:
    """A parsed nnU-Net raw dataset.

    Attributes:
        root: dataset folder.
        channel_names: channel index -> name (``"CT"``, ``"T2"``, ``"R"`` ...).
        labels: label name -> integer value (``background`` = 0 included).
        file_ending: file extension of every image and label (``".nii.gz"``, ``".png"``).
        training: labelled cases from ``imagesTr``/``labelsTr``, sorted by id.
        test: unlabelled cases from ``imagesTs``.
        problems: structural problems found while reading (missing channel or label files,
            labels without images); :func:`check_dataset` reports them as errors.
        partial_labels: case id -> names of the foreground classes its label annotates, for
            the partially labelled cases declared in ``dataset.json`` (``"partial_labels":
            {"case_003": ["liver"]}``); cases not listed annotate every class.
    """

    root: Path
    name: str
    channel_names: dict[int, str]
    labels: dict[str, int]
    file_ending: str
    training: tuple[CaseFiles, ...]
    test: tuple[CaseFiles, ...] = ()
    num_training_declared: int | None = None
    problems: tuple[str, ...] = field(default=())
    partial_labels: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def label_values(self) -> tuple[int, ...]:
        """Sorted label values including background 0."""
        return tuple(sorted(set(self.labels.values()) | {0}))

    @property
    def label_names(self) -> dict[int, str]:
        """Label value -> name."""
        return {v: k for k, v in self.labels.items()}

    def case(self, case_id: str) -> CaseFiles:
        for c in (*self.training, *self.test):
            if c.case_id == case_id:
                return c
        raise InputError(f"case {case_id!r} is not in dataset {self.root}")


@dataclass(frozen=True)
class Issue:
    """One finding of :func:`check_dataset`: ``level`` is ``"error"`` or ``"warning"``."""

    level: str
    message: str
    case_id: str | None = None

    def __str__(self) -> str:
        where = f"{self.case_id}: " if self.case_id else ""
        return f"{self.level.upper()}: {where}{self.message}"


def read_dataset_json(root: Path) -> dict[str, Any]:
    """The checked ``dataset.json`` of dataset folder ``root`` (required keys present)."""
    path = root / "dataset.json"
    if not path.is_file():
        raise InputError(f"{root}: no dataset.json (is this an nnU-Net raw dataset folder?)")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON: {exc}") from exc
    for key in ("channel_names", "labels", "file_ending"):
        if key not in meta:
            raise InputError(f"{path}: missing key {key!r}")
    if "dataset" in meta:
        raise InputError(f"{path}: explicit 'dataset' file lists are not supported yet")
    return meta


def _group_images(folder: Path, ending: str) -> tuple[dict[str, dict[int, Path]], list[str]]:
    groups: dict[str, dict[int, Path]] = defaultdict(dict)
    problems = []
    if not folder.is_dir():
        return {}, problems
    for f in sorted(folder.iterdir()):
        parts = split_ending(f.name, (ending,))
        if f.name.startswith(".") or parts is None:
            continue
        case_channel = split_channel(parts[0])
        if case_channel is None:
            problems.append(f"{f}: image name must end with _CCCC{ending} (channel index)")
            continue
        groups[case_channel[0]][case_channel[1]] = f
    return dict(groups), problems


def image_case_ids(root: str | Path, ending: str) -> list[str]:
    """Sorted ids of the cases with at least one channel file in ``root/imagesTr``."""
    return sorted(_group_images(Path(root) / "imagesTr", ending)[0])


def _cases(groups: dict[str, dict[int, Path]]) -> list[CaseFiles]:
    """Cases whose channel files are numbered 0..N-1 (others are reported as problems)."""
    out = []
    for case_id in sorted(groups):
        chans = groups[case_id]
        if sorted(chans) == list(range(len(chans))):
            out.append(CaseFiles(case_id, tuple(chans[i] for i in sorted(chans))))
    return out


def read_dataset(root: str | Path) -> NnunetDataset:
    """Parse ``dataset.json`` and the ``imagesTr``/``labelsTr``/``imagesTs`` folders.

    Raises:
        InputError: no ``dataset.json``, missing keys, unsupported labels, no training case.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InputError(f"{root}: no such dataset folder")
    meta = read_dataset_json(root)
    js = root / "dataset.json"
    ending = str(meta["file_ending"])
    if not ending.startswith("."):
        raise InputError(f"{js}: file_ending must start with '.', got {ending!r}")
    if ending.lower() not in DATASET_ENDINGS:
        raise InputError(f"{js}: file_ending {ending!r} not supported ({DATASET_ENDINGS})")
    try:
        channels = {int(k): str(v) for k, v in dict(meta["channel_names"]).items()}
    except (TypeError, ValueError) as exc:
        raise InputError(f"{js}: channel_names keys must be '0', '1', ...") from exc
    if sorted(channels) != list(range(len(channels))) or not channels:
        raise InputError(f"{js}: channel_names must be numbered 0..N-1, got {sorted(channels)}")
    labels = parse_labels(meta["labels"], js)

    groups, problems = _group_images(root / "imagesTr", ending)
    training = []
    for case in _cases(groups):
        label = root / "labelsTr" / f"{case.case_id}{ending}"
        if not label.is_file():
            problems.append(f"{case.case_id}: label file {label} is missing")
            continue
        training.append(CaseFiles(case.case_id, case.images, label))
    for case_id, chans in groups.items():
        if sorted(chans) != list(range(len(chans))):
            missing = sorted(set(range(max(chans) + 1)) - set(chans))
            problems.append(f"{case_id}: channel files {[f'{c:04d}' for c in missing]} are missing")
    labels_dir = root / "labelsTr"
    if labels_dir.is_dir():
        for f in sorted(labels_dir.glob(f"*{ending}")):
            cid = f.name[: -len(ending)]
            if cid not in groups:
                problems.append(f"{cid}: label {f.name} has no image in imagesTr")
    test_groups, test_problems = _group_images(root / "imagesTs", ending)
    test = _cases(test_groups)
    if not training and not problems:
        raise InputError(f"{root}: no training cases found in imagesTr/ (ending {ending})")
    declared = meta.get("numTraining")
    partial = parse_partial(meta.get("partial_labels"), labels, set(groups), js)
    return NnunetDataset(
        root=root,
        name=str(meta.get("name", root.name)),
        channel_names=channels,
        labels=labels,
        file_ending=ending,
        training=tuple(training),
        test=tuple(test),
        num_training_declared=int(declared) if isinstance(declared, int) else None,
        problems=tuple(problems + test_problems),
        partial_labels=partial,
    )


def load_case(
    dataset: NnunetDataset, case: CaseFiles, *, with_label: bool = True
) -> tuple[Image, LabelMap | None]:
    """Load all channel files of a case into one channel-last ``Image``.

    Returns:
        ``(image, label)``: ``image.array`` is ``(H, W, C)`` or ``(Z, Y, X, C)`` with
        ``C == dataset.num_channels`` (``channels=True`` even for one channel); ``label`` is
        on the same grid, or None when the case has no label or ``with_label`` is False.

    Raises:
        InputError: channel files disagree in shape, the channel count differs from
            ``dataset.json``, or the label's geometry differs from the image's.
    """
    from medseg.io import load, load_label

    return assemble_case(
        [load(p) for p in case.images],
        load_label(case.label) if (with_label and case.label is not None) else None,
        expected_channels=dataset.num_channels,
        case_id=case.case_id,
    )


def assemble_case(
    parts: list[Image],
    label: LabelMap | None,
    *,
    expected_channels: int,
    case_id: str,
) -> tuple[Image, LabelMap | None]:
    """Stack channel images (same grid) into one channel-last image and check the label."""
    first = parts[0]
    arrays = []
    for i, part in enumerate(parts):
        if part.shape != first.shape:
            raise InputError(
                f"{case_id}: channel file {i} has shape {part.shape}, channel 0 has {first.shape}"
            )
        if not part.same_geometry(first, atol=1e-3):
            raise InputError(
                f"{case_id}: channel file {i} geometry (spacing {part.spacing}, origin "
                f"{part.origin}) differs from channel 0 (spacing {first.spacing}, origin "
                f"{first.origin})"
            )
        arr = part.array if part.channels else part.array[..., None]
        arrays.append(np.asarray(arr, dtype=np.float32))
    stacked = np.concatenate(arrays, axis=-1)
    if stacked.shape[-1] != expected_channels:
        raise InputError(
            f"{case_id}: {stacked.shape[-1]} image channels found, dataset.json channel_names "
            f"lists {expected_channels}"
        )
    image = Image(
        array=stacked,
        spacing=first.spacing,
        origin=first.origin,
        direction=first.direction,
        modality=first.modality,
        channels=True,
        meta=dict(first.meta),
    )
    if label is not None:
        _check_label_geometry(image, label, case_id)
    return image, label


def _check_label_geometry(image: Image, label: LabelMap, case_id: str) -> None:
    if label.shape != image.shape:
        raise InputError(f"{case_id}: label shape {label.shape} differs from image {image.shape}")
    checks = (
        ("spacing", image.spacing, label.spacing),
        ("origin", image.origin, label.origin),
        ("direction", image.direction, label.direction),
    )
    for name, a, b in checks:
        if not np.allclose(a, b, atol=1e-3, rtol=1e-4):
            raise InputError(
                f"{case_id}: label {name} {np.round(np.asarray(b), 4).tolist()} differs from "
                f"image {name} {np.round(np.asarray(a), 4).tolist()}"
            )


def _spacing_outliers(spacings: dict[str, tuple[float, ...]], factor: float) -> list[Issue]:
    if len(spacings) < 3:
        return []
    arr = np.array(list(spacings.values()))
    med = np.median(arr, axis=0)
    issues = []
    for cid, sp in spacings.items():
        ratio = np.maximum(np.asarray(sp) / med, med / np.asarray(sp))
        if np.any(ratio > factor):
            issues.append(
                Issue(
                    "warning",
                    f"spacing {tuple(round(s, 4) for s in sp)} is more than {factor:g}x away "
                    f"from the median {tuple(round(float(m), 4) for m in med)}",
                    cid,
                )
            )
    return issues


def check_dataset(dataset: NnunetDataset, *, spacing_outlier_factor: float = 3.0) -> list[Issue]:
    """Verify every training case; returns all issues found (empty list = dataset is fine).

    Checks: structural problems from :func:`read_dataset`, ``numTraining``, readable files,
    channel count, geometry of channels vs label, label values vs ``dataset.json``, NaNs,
    empty labels, 2D/3D consistency and spacing outliers (more than
    ``spacing_outlier_factor`` away from the median on any axis).
    """
    from tqdm import tqdm

    issues = [Issue("error", p) for p in dataset.problems]
    n_declared = dataset.num_training_declared
    n_found = len(dataset.training) + sum("label file" in p for p in dataset.problems)
    if n_declared is not None and n_declared != n_found:
        issues.append(
            Issue("warning", f"dataset.json numTraining is {n_declared}, found {n_found} cases")
        )
    allowed = set(dataset.label_values)
    spacings: dict[str, tuple[float, ...]] = {}
    dims: dict[int, list[str]] = defaultdict(list)
    for case in tqdm(dataset.training, desc="check", unit="case", leave=False):
        try:
            image, label = load_case(dataset, case)
        except InputError as exc:
            msg = str(exc).removeprefix(f"{case.case_id}: ")
            issues.append(Issue("error", msg, case.case_id))
            continue
        if label is None:  # pragma: no cover - read_dataset only keeps labelled cases
            continue
        spacings[case.case_id] = image.spacing
        dims[image.ndim].append(case.case_id)
        if not np.all(np.isfinite(image.array)):
            issues.append(Issue("error", "image contains NaN or inf values", case.case_id))
        present = {int(v) for v in np.unique(label.array)}
        unknown = sorted(present - allowed)
        if unknown:
            issues.append(
                Issue(
                    "error",
                    f"label values {unknown} are not in dataset.json labels {sorted(allowed)}",
                    case.case_id,
                )
            )
        if present <= {0}:
            issues.append(Issue("warning", "label has no foreground", case.case_id))
    if len(dims) > 1:
        detail = ", ".join(f"{d}D: {len(ids)} cases (e.g. {ids[0]})" for d, ids in dims.items())
        issues.append(Issue("error", f"cases mix 2D and 3D images: {detail}"))
    else:
        issues.extend(_spacing_outliers(spacings, spacing_outlier_factor))
    return issues


def format_issues(issues: list[Issue]) -> str:
    """One line per issue, errors first."""
    ordered = sorted(issues, key=lambda i: (i.level != "error", i.case_id or ""))
    return "\n".join(str(i) for i in ordered)
