"""Predictor on real data from ``../shared/data`` (skipped when it is absent)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

import medseg.io as mio
from medseg.inference.predictor import Predictor
from medseg.inference.propagation import PropagationConfig
from medseg.prompts import box_from_mask

log = logging.getLogger(__name__)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm, overshoot", [("slices", 1), ("keyframes", 2)])
def test_ct_gallbladder_propagation_dice(
    shared_data: Path, litemedsam, algorithm: str, overshoot: int
) -> None:
    """Gallbladder (label 4, slices 2..14) of TotalSegmentator's example CT (3 mm, 30 slices):
    box on the largest slice, propagated up and down; it must stop near both ends. NIfTI has
    no modality, so this also checks that the HU range is recognised as CT.
    Measured: slices rule Dice 0.88, slices 1..13; keyframes (default) 0.85, slices 2..16
    (it jumps from slice 11 to a blob past the end, ``docs/models.md``)."""
    root = shared_data / "totalseg_ref"
    image = mio.load(root / "images" / "example_ct_sm.nii.gz")
    truth = mio.load_label(root / "labels" / "example_ct_sm.nii.gz").array == 4
    z = int(truth.sum(axis=(1, 2)).argmax())
    p = Predictor(litemedsam, progress=False, propagation=PropagationConfig(algorithm=algorithm))
    p.set_image(image)
    r = p.predict(box=box_from_mask(truth[z]), slice_index=z)
    dice = 2 * (r.mask & truth).sum() / (r.mask.sum() + truth.sum())
    log.info("gallbladder %s Dice %.3f, slices %s", algorithm, dice, r.slice_ranges)
    assert dice > 0.8
    zs = np.flatnonzero(truth.any(axis=(1, 2)))
    lo, hi = r.slice_ranges[0]
    assert zs[0] - 1 <= lo <= zs[0] + 1 and zs[-1] - 2 <= hi <= zs[-1] + overshoot
    assert r.to_label_map().same_geometry(image)
