"""Turning what a user passes to ``Predictor.set_image`` into an :class:`Image` and the
array a model sees: numpy shape rules, colour channels, and the CT guess for files without a
modality (see :mod:`medseg.inference.predictor` for the rules)."""

from __future__ import annotations

import logging

import numpy as np

from medseg.errors import InputError
from medseg.io.image import Image

__all__ = ["as_image", "model_array", "guess_modality"]

log = logging.getLogger(__name__)


def as_image(image: Image | np.ndarray) -> Image:
    """Wrap a numpy array as an :class:`Image` following the rules in the module docstring."""
    if isinstance(image, Image):
        return image
    arr = np.asarray(image)
    if arr.ndim == 2:
        return Image(arr)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        return Image(arr, channels=True, modality="RGB" if arr.dtype == np.uint8 else "unknown")
    if arr.ndim == 3 and arr.shape[0] == 3:
        raise InputError(
            f"array of shape {arr.shape} is ambiguous: pass RGB channels last (H, W, 3) or a "
            "3-slice volume as a medseg.io.Image"
        )
    if arr.ndim == 3:
        return Image(arr)
    raise InputError(f"expected (H, W), (H, W, 3) or (Z, Y, X) array, got shape {arr.shape}")


def model_array(img: Image, *, first_channel: bool = False) -> np.ndarray:
    """Spatial array with at most 3 colour channels last: ``S`` or ``(*S, 3)``.

    Other channel counts (e.g. 2 or 5 MR sequences) raise ``InputError``, or with
    ``first_channel=True`` give channel 0 (prompts on the image of an automatic model that
    takes every channel).
    """
    arr = img.array
    if not img.channels:
        return arr
    c = arr.shape[-1]
    if c == 1:
        return arr[..., 0]
    if c in (3, 4):
        return arr[..., :3]
    if first_channel:
        log.info("prompts see channel 0 of the %d channels", c)
        return arr[..., 0]
    raise InputError(f"cannot segment a {c}-channel image; pass one channel or RGB")


def guess_modality(img: Image, arr: np.ndarray) -> str:
    """The image's modality, or ``"CT"`` for an unknown-modality gray image in a HU-like range.

    NIfTI/NRRD files carry no modality; without this, CT volumes would get percentile
    normalisation instead of a CT window (measured on TotalSegmentator CT kidneys: 3D Dice
    0.47 -> 0.84). HU-like means at least 1 % of the voxels at or below -500 (air and lung;
    36-65 % in the CT volumes of ``../shared/data``), a maximum >= 100 and a 99.5th
    percentile <= 4000 (an SPM-normalised MR with a few voxels near -600 fails the first
    rule). A CT cropped to soft tissue has no air: pass ``modality="CT"`` for it.
    """
    if img.modality not in ("", "unknown") or img.channels or arr.dtype == np.uint8:
        return img.modality
    sample = arr.ravel()[:: max(1, arr.size // 1_000_000)]  # at most ~1M voxels
    air = float(np.mean(sample <= -500))
    hi, p995 = float(np.nanmax(arr)), float(np.nanpercentile(sample, 99.5))
    if air >= 0.01 and hi >= 100 and p995 <= 4000:
        log.info(
            "image of unknown modality looks like CT (%.0f %% of voxels <= -500, 99.5th "
            "percentile %g): using a CT window",
            100 * air,
            p995,
        )
        return "CT"
    return img.modality
