"""Benchmark datasets: find cases, check them, and turn their labels into targets.

Layouts read (``DATA`` is the dataset folder):

- ``DATA/images/<id>.<ext>`` + ``DATA/labels/<id>.<ext>`` (2D PNG/TIFF/..., or 3D NIfTI with
  the image as ``<id>_0000.nii.gz`` or ``<id>.nii.gz``; only channel ``_0000`` is used);
- nnU-Net raw: ``DATA/dataset.json`` + ``imagesTr/<id>_0000<ending>`` + ``labelsTr/<id><ending>``.

Whether labels are semantic (0 = background, 1..K classes) or instances (each value one
object) comes from ``BenchConfig.instances``, else from the shared-data ``manifest.json`` in
``DATA``'s parent folder (``task``), else semantic. A target is one class (or one instance)
of one case; with ``components`` each connected component (full connectivity) is one target.

3D cases: each target is evaluated on its largest slice (the axial slice ``z`` with the most
target pixels; the first one on ties): the slice is a 2D image with in-plane spacing, and
the target's mask on that slice is the ground truth. In volume mode (box-only protocols) the
target is the whole 3D mask instead.

Bad cases (unreadable file, image/label shape mismatch, no foreground, no label file) are
returned as :class:`Skip` records with the reason, never dropped silently.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.io.image import Image, LabelMap
from medseg.io.naming import split_channel, split_ending

__all__ = [
    "CaseRef",
    "DatasetRef",
    "TargetSpec",
    "Target",
    "Skip",
    "discover",
    "load_pair",
    "plan_case",
    "materialize",
    "slice_image",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseRef:
    """One case: its image file (channel 0) and label file (None when missing)."""

    dataset: str
    case_id: str
    image: Path | None
    label: Path | None


@dataclass(frozen=True)
class DatasetRef:
    """A dataset folder: name, layout, label kind, modality, cases and label names."""

    name: str
    root: Path
    layout: str
    instances: bool
    modality: str | None
    cases: tuple[CaseRef, ...]
    label_names: dict[int, str]
    case_label_names: dict[str, dict[int, str]]

    def names_for(self, case_id: str) -> dict[int, str]:
        return self.case_label_names.get(case_id, self.label_names)


@dataclass(frozen=True)
class TargetSpec:
    """Where a target is: label value, component (1-based, None = whole class) and slice."""

    dataset: str
    case_id: str
    target_id: str
    label: int
    label_name: str | None
    component: int | None
    slice_index: int | None
    area: int


@dataclass(frozen=True, eq=False)
class Target:
    """A target ready to run: ``mask`` 2D ``(H, W)`` (or 3D ``(Z, Y, X)`` in volume mode) on
    ``image`` (a 2D slice image, or the volume), with ``spacing`` in array axis order."""

    spec: TargetSpec
    mask: np.ndarray
    image: Image

    @property
    def spacing(self) -> tuple[float, ...]:
        return self.image.spacing


@dataclass(frozen=True)
class Skip:
    """A case or target that was not evaluated, and why."""

    dataset: str
    case_id: str
    reason: str
    target_id: str | None = None
    model: str | None = None
    protocol: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _stem(path: Path) -> str | None:
    parts = split_ending(path.name)
    return None if parts is None else parts[0]


def _manifest_entry(root: Path) -> dict[str, Any] | None:
    path = root.parent / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None
    for ds in manifest.get("datasets", []):
        if ds.get("name") == root.name:
            return ds
    return None


def _int_names(raw: dict[str, Any] | None) -> dict[int, str]:
    out = {}
    for k, v in (raw or {}).items():
        if str(k).isdigit() and int(k) != 0:
            out[int(k)] = str(v)
    return out


def _folder_cases(root: Path, name: str) -> tuple[CaseRef, ...]:
    """Pair ``images/`` with ``labels/`` by case name. An image stem ``CASE_CCCC`` is channel
    CCCC of ``CASE`` (nnU-Net) only when no label is named after the whole stem, so
    ``tg3k_0007.png`` with label ``tg3k_0007.png`` is case ``tg3k_0007``, not channel 7."""
    labels = {}
    for f in sorted((root / "labels").iterdir()):
        stem = _stem(f)
        if stem is not None and not f.name.startswith("."):
            labels[stem] = f
    images: dict[str, Path] = {}
    for f in sorted((root / "images").iterdir()):
        stem = _stem(f)
        if stem is None or f.name.startswith("."):
            continue
        m = None if stem in labels else split_channel(stem)
        if m is None:
            images.setdefault(stem, f)
        elif m[1] == 0:
            images[m[0]] = f
    ids = sorted(set(images) | set(labels))
    return tuple(CaseRef(name, i, images.get(i), labels.get(i)) for i in ids)


def discover(path: str | Path, instances: bool | None = None) -> DatasetRef:
    """Find the cases of a dataset folder (see the module docstring for the layouts).

    Raises ``InputError`` when the folder has neither layout or no case.
    """
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise InputError(f"{root}: no such dataset folder")
    entry = _manifest_entry(root)
    modality = None
    names: dict[int, str] = {}
    case_names: dict[str, dict[int, str]] = {}
    if (root / "dataset.json").is_file() and (root / "imagesTr").is_dir():
        from medseg.data.nnunet import read_dataset

        ds = read_dataset(root)
        name, layout = root.name, "nnunet"
        cases = tuple(CaseRef(name, c.case_id, c.images[0], c.label) for c in ds.training)
        names = {v: k for k, v in ds.labels.items() if v != 0}
        if ds.channel_names.get(0, "").upper() == "CT":
            modality = "CT"
    elif (root / "images").is_dir() and (root / "labels").is_dir():
        name, layout = root.name, "images+labels"
        cases = _folder_cases(root, name)
    else:
        raise InputError(
            f"{root}: not a dataset folder: expected images/ + labels/, or dataset.json + "
            "imagesTr/ + labelsTr/ (nnU-Net)"
        )
    if not cases:
        raise InputError(f"{root}: no cases found")
    if entry is not None:
        names = _int_names(entry.get("label_names")) or names
        meta = [c for c in entry.get("cases", []) if c.get("label_names")]
        case_names = {c["id"]: _int_names(c["label_names"]) for c in meta}
        text = str(entry.get("modality", "")).upper()
        if entry.get("dims") == 3 and text.startswith("CT") and "MR" not in text:
            modality = "CT"
        elif entry.get("dims") == 3 and text.startswith("MR"):
            modality = "MR"  # stops the Predictor guessing CT from a HU-like range
    if instances is None:
        instances = bool(entry is not None and entry.get("task") == "instance")
    return DatasetRef(name, root, layout, instances, modality, cases, names, case_names)


def load_pair(ds: DatasetRef, case: CaseRef) -> tuple[Image, LabelMap]:
    """Load and check one case's image and label.

    Raises ``InputError`` (the skip reason) for a missing label/image, an unreadable file, an
    image/label shape mismatch, or a label without foreground.
    """
    from medseg.io import load, load_label

    if case.label is None:
        raise InputError("no label file")
    if case.image is None:
        raise InputError(f"label {case.label.name} has no image file")
    image = load(case.image)
    if ds.modality and image.modality in ("unknown", ""):
        image = image.with_array(image.array, modality=ds.modality)
    label = load_label(case.label)
    if image.shape != label.shape:
        raise InputError(f"image shape {image.shape} does not match label shape {label.shape}")
    if not np.any(label.array):
        raise InputError("label has no foreground")
    return image, label


def _class_masks(label: np.ndarray, value: int, bbox: tuple[slice, ...], components: bool):
    """Yield ``(component or None, mask inside bbox)`` for one label value."""
    from scipy import ndimage

    sub = label[bbox] == value
    if not components:
        yield None, sub
        return
    comps, n = ndimage.label(sub, structure=np.ones((3,) * sub.ndim, dtype=bool))
    for c in range(1, n + 1):
        yield c, comps == c


def _spec(ds: DatasetRef, case_id: str, value: int, comp: int | None, bbox, sub, volume: bool):
    prefix = "instance" if ds.instances else "label"
    target_id = f"{prefix}{value}" + (f"_cc{comp}" if comp is not None else "")
    z = None
    area = int(sub.sum())
    if sub.ndim == 3 and not volume:
        per_slice = sub.sum(axis=(1, 2))
        z = int(bbox[0].start + np.argmax(per_slice))
        area = int(per_slice.max())
    name = ds.names_for(case_id).get(value)
    return TargetSpec(ds.name, case_id, target_id, value, name, comp, z, area)


def plan_case(
    ds: DatasetRef,
    label: LabelMap,
    case_id: str,
    *,
    components: bool = False,
    min_area: int = 1,
    max_targets: int | None = None,
    volume: bool = False,
    rng: np.random.Generator | None = None,
) -> tuple[list[TargetSpec], list[Skip]]:
    """The targets of one case, and the targets skipped (too small)."""
    from scipy import ndimage

    arr = label.array
    specs, skips = [], []
    for value, bbox in enumerate(ndimage.find_objects(arr), start=1):
        if bbox is None:
            continue
        for comp, sub in _class_masks(arr, value, bbox, components):
            spec = _spec(ds, case_id, value, comp, bbox, sub, volume)
            if spec.area < min_area:
                reason = f"target area {spec.area} px < min area {min_area}"
                skips.append(Skip(ds.name, case_id, reason, spec.target_id))
            else:
                specs.append(spec)
    if max_targets is not None and len(specs) > max_targets:
        if rng is None:
            raise InputError("sampling targets needs a random generator")
        keep = np.sort(rng.choice(len(specs), size=max_targets, replace=False))
        specs = [specs[i] for i in keep]
    return specs, skips


def slice_image(volume: Image, z: int) -> Image:
    """Slice ``z`` of a volume as a 2D image with the in-plane spacing (``(Y, X[, C])``)."""
    return Image(
        array=volume.array[z],
        spacing=volume.spacing[1:],
        modality=volume.modality,
        channels=volume.channels,
        meta={**volume.meta, "slice_index": z},
    )


def materialize(image: Image, label: LabelMap, specs: list[TargetSpec]) -> Iterator[Target]:
    """Build the masks and images of planned targets, one at a time (see :class:`Target`).

    Targets come grouped by slice (2D and volume targets first), so consecutive targets share
    one image object and a predictor's ``set_image`` is needed once per group; masks are made
    on demand, so a case with hundreds of instances never holds all of them.
    """
    from scipy import ndimage

    arr = label.array
    boxes = ndimage.find_objects(arr)
    slices: dict[int, Image] = {}
    parts: dict[tuple[int, bool], dict[int | None, np.ndarray]] = {}
    for spec in sorted(specs, key=lambda s: -1 if s.slice_index is None else s.slice_index):
        bbox = boxes[spec.label - 1] if spec.label <= len(boxes) else None
        if bbox is None:
            raise InputError(f"{spec.case_id}: label {spec.label} vanished since planning")
        key = (spec.label, spec.component is not None)
        if key not in parts:  # components of one label are computed once per case
            parts[key] = dict(_class_masks(arr, spec.label, bbox, key[1]))
        full = np.zeros(arr.shape, dtype=bool)
        full[bbox] = parts[key][spec.component]
        if spec.slice_index is None:
            yield Target(spec, full, image)
            continue
        z = spec.slice_index
        if z not in slices:
            slices = {z: slice_image(image, z)}  # grouped by slice: keep only the current one
        yield Target(spec, full[z], slices[z])
