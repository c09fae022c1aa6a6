"""Network-frame training samples: a target (real or synthetic) cropped as at inference.

Real targets (:func:`medseg.training.interactive.data.sample_target`) are cropped with the
same :func:`medseg.models.interactive_net.crop_window` the model uses at inference, around
the target's box enlarged by a random factor (log-uniform 1.1-3, sometimes with a larger
minimum side, as a click-only first crop would be), so objects appear at the scales the
model sees in use. Synthetic targets (probability ``p_synthetic``) are drawn on a random
window of a real image: a superpixel region or a drawn shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medseg.errors import InputError
from medseg.models.interactive_net import crop_resize, crop_window
from medseg.prompts.simulation import target_box
from medseg.training.interactive.data import Source, sample_target
from medseg.training.interactive.synthetic import augment, shape_target, superpixel_target

__all__ = ["Sample", "SampleMaker"]


@dataclass(frozen=True, eq=False)
class Sample:
    """One sample: ``image`` ``(3, S, S)`` in ``[0, 1]``, ``gt`` ``(S, S)`` bool (non-empty),
    ``valid`` ``(S, S)`` float32 (1 on in-image pixels)."""

    image: np.ndarray
    gt: np.ndarray
    valid: np.ndarray


class SampleMaker:
    """Draws samples from ``sources``: a dataset uniformly, then one of its images."""

    def __init__(self, sources: Sequence[Source], size: int = 128, p_synthetic: float = 0.35):
        self.size = int(size)
        self.p_synthetic = float(p_synthetic)
        groups: dict[str, list[Source]] = {}
        for src in sources:
            groups.setdefault(src.name.split("/")[0], []).append(src)
        self.groups = list(groups.values())

    def _source(self, rng: np.random.Generator) -> Source:
        group = self.groups[int(rng.integers(len(self.groups)))]
        return group[int(rng.integers(len(group)))]

    def _synthetic(self, image: np.ndarray, rng: np.random.Generator):
        h, w = image.shape[:2]
        side = rng.uniform(min(64, max(h, w)), max(h, w))
        cx, cy = rng.uniform(0, w - 1), rng.uniform(0, h - 1)
        window = crop_window((cx, cy, cx, cy), (h, w), enlarge=1.0, min_side=side)
        img = crop_resize(image, window, self.size) / 255.0
        valid = crop_resize(np.ones((h, w), np.float32), window, self.size)[0] > 0.5
        if rng.random() < 0.5:
            gt = superpixel_target(img, rng)
            return (None, None, None) if gt is None else (img, gt & valid, valid)
        img, gt = shape_target(img, rng)
        return img, gt, valid

    def _real(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
        h, w = mask.shape
        extent = target_box(mask)
        enlarge = float(np.exp(rng.uniform(np.log(1.1), np.log(3.0))))
        min_side = 16.0 if rng.random() < 0.7 else rng.uniform(16, max(16, 0.35 * max(h, w)))
        window = crop_window(extent, (h, w), enlarge=enlarge, min_side=min_side)
        img = crop_resize(image, window, self.size) / 255.0
        frac = crop_resize(mask.astype(np.float32), window, self.size)[0]
        gt = frac > 0.5
        if not gt.any() and frac.max() > 0:  # thin structures: keep the most covered pixels
            gt = frac >= 0.5 * frac.max()
        valid = crop_resize(np.ones((h, w), np.float32), window, self.size)[0] > 0.5
        return img, gt, valid

    def __call__(self, rng: np.random.Generator, tries: int = 20) -> Sample:
        """A random sample (retries draws whose target vanishes at network size)."""
        for _ in range(tries):
            image, mask = sample_target(self._source(rng), rng)
            if rng.random() < self.p_synthetic:
                img, gt, valid = self._synthetic(image, rng)
            else:
                img, gt, valid = self._real(image, mask, rng)
            if gt is None or gt.sum() < 3:
                continue
            img, gt, valid = augment(img.astype(np.float32), gt, valid.astype(np.float32), rng)
            if gt.sum() >= 3:
                return Sample(img, gt, valid)
        raise InputError(f"no usable target in {tries} draws")
