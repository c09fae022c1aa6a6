"""Dataset fingerprint: what the planner needs to know about a labelled dataset.

Per case: spatial shape (before and after cropping to the non-zero region), spacing (array
axis order), voxels per label. Per channel: intensity statistics of foreground voxels (as
nnU-Net: up to ``samples_per_case`` voxels drawn from each case's label > 0 region).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg.automatic.preprocess import nonzero_bbox
from medseg.errors import InputError
from medseg.io.atomic import atomic_path

__all__ = [
    "ChannelStats",
    "CaseFingerprint",
    "Fingerprint",
    "compute_fingerprint",
    "save_fingerprint",
    "load_fingerprint",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChannelStats:
    """Intensity statistics of one channel over sampled foreground voxels."""

    mean: float
    std: float
    median: float
    min: float
    max: float
    percentile_00_5: float
    percentile_99_5: float


@dataclass(frozen=True)
class CaseFingerprint:
    """``shape``/``spacing`` in array axis order; ``label_voxels`` per label value."""

    case_id: str
    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    shape_after_crop: tuple[int, ...]
    label_voxels: dict[int, int]


@dataclass(frozen=True)
class Fingerprint:
    """Everything planning needs, computed once per dataset and saved as JSON."""

    dims: int
    channel_names: tuple[str, ...]
    label_values: tuple[int, ...]
    label_names: dict[int, str]
    cases: tuple[CaseFingerprint, ...]
    channel_stats: tuple[ChannelStats, ...]

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def spacings(self) -> np.ndarray:
        """``(num_cases, dims)`` spacings in array axis order."""
        return np.array([c.spacing for c in self.cases], dtype=float)

    @property
    def shapes_after_crop(self) -> np.ndarray:
        return np.array([c.shape_after_crop for c in self.cases], dtype=float)

    @property
    def crop_reduction(self) -> float:
        """Median of (voxels after crop / voxels before) over cases, 1.0 = nothing cropped."""
        ratios = [np.prod(c.shape_after_crop) / max(1, np.prod(c.shape)) for c in self.cases]
        return float(np.median(ratios))

    @property
    def class_frequencies(self) -> dict[int, float]:
        """Fraction of all voxels that carry each label value."""
        total = sum(sum(c.label_voxels.values()) for c in self.cases) or 1
        return {
            v: sum(c.label_voxels.get(v, 0) for c in self.cases) / total for v in self.label_values
        }

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["class_frequencies"] = {str(k): v for k, v in self.class_frequencies.items()}
        out["crop_reduction"] = self.crop_reduction
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fingerprint:
        cases = tuple(
            CaseFingerprint(
                case_id=c["case_id"],
                shape=tuple(c["shape"]),
                spacing=tuple(c["spacing"]),
                shape_after_crop=tuple(c["shape_after_crop"]),
                label_voxels={int(k): int(v) for k, v in c["label_voxels"].items()},
            )
            for c in data["cases"]
        )
        return cls(
            dims=int(data["dims"]),
            channel_names=tuple(data["channel_names"]),
            label_values=tuple(int(v) for v in data["label_values"]),
            label_names={int(k): str(v) for k, v in data["label_names"].items()},
            cases=cases,
            channel_stats=tuple(ChannelStats(**s) for s in data["channel_stats"]),
        )


def _stats(values: np.ndarray) -> ChannelStats:
    if values.size == 0:
        values = np.zeros(1, dtype=np.float32)
    p005, p995, med = np.percentile(values, [0.5, 99.5, 50.0])
    return ChannelStats(
        mean=float(values.mean()),
        std=float(values.std()),
        median=float(med),
        min=float(values.min()),
        max=float(values.max()),
        percentile_00_5=float(p005),
        percentile_99_5=float(p995),
    )


def compute_fingerprint(
    dataset: Any, *, samples_per_case: int = 10000, seed: int = 0
) -> Fingerprint:
    """Load every training case of an :class:`~medseg.data.nnunet.NnunetDataset` once.

    Raises:
        InputError: a case cannot be loaded, or cases mix 2D and 3D.
    """
    from tqdm import tqdm

    from medseg.data.nnunet import load_case

    rng = np.random.default_rng(seed)
    cases, samples, dims = [], [[] for _ in range(dataset.num_channels)], set()
    for case in tqdm(dataset.training, desc="fingerprint", unit="case", leave=False):
        image, label = load_case(dataset, case)
        dims.add(image.ndim)
        arr = image.array  # (*spatial, C)
        bbox = nonzero_bbox(arr)
        values, counts = np.unique(label.array, return_counts=True)
        fg = np.flatnonzero(label.array.ravel() > 0)
        pick = rng.choice(fg, size=min(samples_per_case, fg.size), replace=False) if fg.size else fg
        flat = arr.reshape(-1, arr.shape[-1])
        for c in range(arr.shape[-1]):
            samples[c].append(flat[pick, c].astype(np.float32))
        cases.append(
            CaseFingerprint(
                case_id=case.case_id,
                shape=tuple(int(s) for s in image.shape),
                spacing=tuple(float(s) for s in image.spacing),
                shape_after_crop=tuple(int(s.stop - s.start) for s in bbox),
                label_voxels={int(v): int(n) for v, n in zip(values, counts, strict=True)},
            )
        )
    if len(dims) != 1:
        raise InputError(f"cases mix 2D and 3D images ({sorted(dims)}D); run medseg auto check")
    stats = tuple(_stats(np.concatenate(s)) for s in samples)
    names = dataset.label_names
    return Fingerprint(
        dims=dims.pop(),
        channel_names=tuple(dataset.channel_names[i] for i in range(dataset.num_channels)),
        label_values=dataset.label_values,
        label_names={v: names.get(v, f"label_{v}") for v in dataset.label_values},
        cases=tuple(cases),
        channel_stats=stats,
    )


def save_fingerprint(fp: Fingerprint, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(fp.to_dict(), indent=2) + "\n")
    return path


def load_fingerprint(path: str | Path) -> Fingerprint:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no fingerprint file")
    return Fingerprint.from_dict(json.loads(path.read_text()))
