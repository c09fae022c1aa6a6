"""MedMNIST-C style corruptions at 5 severities, for robustness tests and augmentation.

Every function takes one float image in ``[0, 1]``, channels first: 2D ``(C, H, W)`` or 3D
``(C, Z, Y, X)``, a severity 1..5 and a NumPy ``Generator``; it returns a new float32 array of
the same shape in ``[0, 1]``. Parameters follow ImageNet-C / MedMNIST-C, scaled for 28-224 px
images. JPEG works on each 2D slice (3D: along Z).

With ``dataset="retinamnist"`` (any key of :data:`~medseg.classify.corrupt_sets.OFFICIAL_SETS`)
:func:`corrupt` and :func:`corrupt_batch` use that dataset's official MedMNIST-C families and
severity parameters instead (:mod:`medseg.classify.corrupt_official`); the generic set below
(also the training-time augmentation) is unchanged.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np

from medseg.errors import InputError

__all__ = [
    "CORRUPTIONS",
    "SEVERITIES",
    "gaussian_noise",
    "gaussian_blur",
    "contrast",
    "brightness",
    "jpeg",
    "pixelate",
    "corrupt",
    "corrupt_batch",
    "corruption_names",
]

SEVERITIES = (1, 2, 3, 4, 5)

# one parameter per severity 1..5
_NOISE_SIGMA = (0.04, 0.06, 0.08, 0.10, 0.12)
_BLUR_SIGMA = (0.5, 0.75, 1.0, 1.25, 1.5)  # in pixels of a 28 px image, scaled with size
_CONTRAST = (0.75, 0.6, 0.45, 0.3, 0.2)
_BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)
_JPEG_QUALITY = (30, 20, 15, 10, 7)
_PIXELATE = (0.9, 0.8, 0.7, 0.6, 0.5)


def _param(values: tuple, severity: int) -> float:
    if severity not in SEVERITIES:
        raise InputError(f"severity must be 1..5, got {severity}")
    return values[severity - 1]


def _finish(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def gaussian_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Additive white noise, sigma 0.04..0.12 of the intensity range."""
    sigma = _param(_NOISE_SIGMA, severity)
    return _finish(x + rng.normal(0.0, sigma, x.shape))


def gaussian_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur over the spatial axes, sigma 0.5..1.5 px at 28 px (scaled with size)."""
    from scipy.ndimage import gaussian_filter

    sigma = _param(_BLUR_SIGMA, severity) * x.shape[-1] / 28.0
    return _finish(gaussian_filter(x, sigma=(0,) + (sigma,) * (x.ndim - 1)))


def contrast(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Contrast reduction towards the per-channel mean, factor 0.75..0.2."""
    c = _param(_CONTRAST, severity)
    mean = x.reshape(x.shape[0], -1).mean(1).reshape((-1,) + (1,) * (x.ndim - 1))
    return _finish((x - mean) * c + mean)


def brightness(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Intensity shift by +0.1..+0.5, clipped."""
    return _finish(x + _param(_BRIGHTNESS, severity))


def _jpeg_2d(plane: np.ndarray, quality: int) -> np.ndarray:
    """``(C, H, W)`` with C in {1, 3} -> the same after a JPEG round trip."""
    from PIL import Image as PILImage

    u8 = np.round(plane * 255).astype(np.uint8)
    img = PILImage.fromarray(u8[0] if u8.shape[0] == 1 else np.moveaxis(u8, 0, -1))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(quality))
    out = np.asarray(PILImage.open(io.BytesIO(buf.getvalue())), dtype=np.float32) / 255.0
    return out[None] if out.ndim == 2 else np.moveaxis(out, -1, 0)


def jpeg(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """JPEG compression at quality 30..7 (3D: slice by slice along Z; channels not 1 or 3:
    each channel alone)."""
    q = _param(_JPEG_QUALITY, severity)
    if x.ndim == 4:
        return _finish(np.stack([jpeg(x[:, z], severity, rng) for z in range(x.shape[1])], 1))
    if x.shape[0] in (1, 3):
        return _finish(_jpeg_2d(x, q))
    return _finish(np.concatenate([_jpeg_2d(x[c : c + 1], q) for c in range(x.shape[0])]))


def pixelate(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Down-sample by 0.9..0.5 (area average) and up-sample back by nearest neighbour."""
    import torch
    import torch.nn.functional as F

    f = _param(_PIXELATE, severity)
    size = x.shape[1:]
    small = tuple(max(1, round(s * f)) for s in size)
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
    t = F.adaptive_avg_pool2d(t, small) if x.ndim == 3 else F.adaptive_avg_pool3d(t, small)
    return _finish(F.interpolate(t, size=size, mode="nearest")[0].numpy())


CORRUPTIONS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "gaussian_noise": gaussian_noise,
    "gaussian_blur": gaussian_blur,
    "contrast": contrast,
    "brightness": brightness,
    "jpeg": jpeg,
    "pixelate": pixelate,
}


def _official_set(dataset: str) -> dict[str, tuple[str, tuple]]:
    from medseg.classify.corrupt_sets import OFFICIAL_SETS

    if dataset not in OFFICIAL_SETS:
        raise InputError(
            f"no MedMNIST-C corruption set for {dataset!r}; choose from {sorted(OFFICIAL_SETS)}"
        )
    return OFFICIAL_SETS[dataset]


def corruption_names(dataset: str | None = None) -> tuple[str, ...]:
    """The corruptions :func:`corrupt` accepts: the generic set, or ``dataset``'s official
    MedMNIST-C set (registry order)."""
    return tuple(CORRUPTIONS) if dataset is None else tuple(_official_set(dataset))


def corrupt(
    x: np.ndarray,
    name: str,
    severity: int,
    rng: np.random.Generator | None = None,
    dataset: str | None = None,
) -> np.ndarray:
    """Apply corruption ``name`` to one image ``(C, H, W)`` or ``(C, Z, Y, X)`` in [0, 1].

    ``name`` is a key of :data:`CORRUPTIONS`, or with ``dataset`` one of
    ``corruption_names(dataset)`` (official MedMNIST-C definitions, 8-bit output).
    """
    if dataset is None and name not in CORRUPTIONS:
        raise InputError(f"unknown corruption {name!r}; choose from {sorted(CORRUPTIONS)}")
    official = None
    if dataset is not None:
        table = _official_set(dataset)
        if name not in table:
            raise InputError(
                f"unknown corruption {name!r} for {dataset}; choose from {sorted(table)}"
            )
        official = table[name]
    x = np.asarray(x, dtype=np.float32)
    if x.ndim not in (3, 4):
        raise InputError(f"expected (C, H, W) or (C, Z, Y, X), got shape {x.shape}")
    rng = rng or np.random.default_rng(0)
    if official is None:
        return CORRUPTIONS[name](x, severity, rng)
    from medseg.classify.corrupt_official import apply_family

    family, params = official
    return apply_family(x, family, _param(params, severity), rng)


def corrupt_batch(
    images: np.ndarray, name: str, severity: int, seed: int = 0, dataset: str | None = None
) -> np.ndarray:
    """Corrupt every image of ``(N, C, ...)``; seeded, so a test set is corrupted the same
    way every time. ``dataset``: as in :func:`corrupt`."""
    rng = np.random.default_rng(seed)
    return np.stack([corrupt(im, name, severity, rng, dataset) for im in images])
