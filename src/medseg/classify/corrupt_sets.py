"""Per-dataset MedMNIST-C corruption sets: which families, at which parameter per severity.

Copied from ``medmnistc`` 0.1.0 ``corruptions/registry.py`` (``CORRUPTIONS_DS``; Apache-2.0,
Di Salvo, Doerrich, Ledig 2024), minus the families that need its assets or OpenCV text
rendering (``stain_deposit``, ``bubble``, ``black_corner``, ``characters``; see
:mod:`medseg.classify.corrupt_official`). Where the registry lists six parameters the first
five are kept, as ``medmnistc`` only generates severities 1..5. A MedMNIST file is matched
by its name (``retinamnist.npz``, ``retinamnist_224.npz``, ...); other data fall back to the
generic set of :mod:`medseg.classify.corrupt`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OFFICIAL_SETS", "official_set_name"]


def _zoom(*specs: tuple[float, float, float]) -> tuple[np.ndarray, ...]:
    return tuple(np.arange(*s) for s in specs)


_DIGITAL_PATH = {"pixelate": ("pixelate", (0.8, 0.6, 0.40, 0.30, 0.25))}
_JPEG_50 = ("jpeg_compression", (50, 30, 15, 10, 7))
_CONTRAST_UP = ("contrast", (1.1, 1.2, 1.3, 1.4, 1.6))
_DOWN_90_40 = (0.9, 0.8, 0.7, 0.6, 0.4)
_BRIGHT_UP = ("brightness", (1.1, 1.2, 1.3, 1.4, 1.5))
_BRIGHT_DOWN = ("brightness", (0.9, 0.8, 0.7, 0.6, 0.5))
_NOISE_CHEST = {
    "gaussian_noise": ("gaussian_noise", (0.04, 0.08, 0.12, 0.18, 0.26)),
    "speckle_noise": ("speckle_noise", (0.05, 0.15, 0.2, 0.35, 0.45)),
    "impulse_noise": ("impulse_noise", (0.01, 0.03, 0.06, 0.09, 0.17)),
    "shot_noise": ("shot_noise", (60, 25, 18, 10, 5)),
}
_ORGAN = {
    "pixelate": ("pixelate", (0.7, 0.6, 0.5, 0.40, 0.35)),
    "jpeg_compression": _JPEG_50,
    "gaussian_noise": ("gaussian_noise", (0.04, 0.08, 0.12, 0.16, 0.20)),
    "speckle_noise": ("speckle_noise", (0.05, 0.10, 0.20, 0.30, 0.40)),
    "impulse_noise": ("impulse_noise", (0.01, 0.02, 0.03, 0.05, 0.08)),
    "shot_noise": ("shot_noise", (200, 100, 50, 25, 15)),
    "gaussian_blur": ("gaussian_blur", (11, 13, 15, 17, 21)),
    "brightness_up": ("brightness", (1.2, 1.3, 1.4, 1.5, 1.6)),
    "brightness_down": ("brightness", (0.8, 0.75, 0.7, 0.65, 0.60)),
    "contrast_up": ("contrast", (1.3, 1.4, 1.6, 1.7, 1.8)),
    "contrast_down": ("contrast", (0.8, 0.7, 0.6, 0.55, 0.5)),
    "gamma_corr_up": ("gamma", (1.3, 1.4, 1.6, 1.8, 2.0)),
    "gamma_corr_down": ("gamma", _DOWN_90_40),
}
_XRAY = {  # chestmnist and pneumoniamnist share these three
    "gaussian_blur": ("gaussian_blur", (3, 5, 7, 9, 11)),
    "gamma_corr_up": ("gamma", (1.1, 1.2, 1.3, 1.4, 1.6)),
    "gamma_corr_down": ("gamma", _DOWN_90_40),
}

#: ``{dataset: {corruption: (family, (param at severity 1, ..., 5))}}``
OFFICIAL_SETS: dict[str, dict[str, tuple[str, tuple[Any, ...]]]] = {
    "pathmnist": {
        **_DIGITAL_PATH,
        "jpeg_compression": _JPEG_50,
        "defocus_blur": ("defocus_blur", ((3, 0.1), (4, 0.1), (5, 0.2), (6, 0.2), (7, 0.3))),
        "motion_blur": ("motion_blur", ((5, 5), (10, 5), (15, 5), (15, 8), (15, 12))),
        "brightness_up": ("brightness", (1.1, 1.15, 1.2, 1.22, 1.25)),
        "brightness_down": ("brightness", (0.85, 0.80, 0.75, 0.72, 0.70)),
        "contrast_up": _CONTRAST_UP,
        "contrast_down": ("contrast", (0.8, 0.7, 0.6, 0.55, 0.5)),
        "saturate": ("saturate", (0.05, 0.10, 0.15, 0.20, 0.25)),
    },
    "bloodmnist": {
        "pixelate": ("pixelate", (0.6, 0.5, 0.40, 0.30, 0.25)),
        "jpeg_compression": _JPEG_50,
        "defocus_blur": ("defocus_blur", ((2, 0.01), (3, 0.1), (4, 0.1), (5, 0.1), (6, 0.1))),
        "motion_blur": ("motion_blur", ((3, 3), (5, 5), (10, 5), (10, 7), (10, 9))),
        "brightness_up": ("brightness", (1.1, 1.2, 1.3, 1.35, 1.4)),
        "brightness_down": _BRIGHT_DOWN,
        "contrast_up": ("contrast", (1.1, 1.15, 1.2, 1.25, 1.3)),
        "contrast_down": ("contrast", (0.9, 0.8, 0.7, 0.6, 0.5)),
        "saturate": ("saturate", (0.05, 0.10, 0.15, 0.17, 0.20)),
    },
    "dermamnist": {
        "pixelate": ("pixelate", (0.7, 0.5, 0.40, 0.30, 0.25)),
        "jpeg_compression": ("jpeg_compression", (30, 20, 15, 10, 7)),
        **_NOISE_CHEST,
        "defocus_blur": ("defocus_blur", ((4, 0.1), (5, 0.2), (6, 0.3), (7, 0.4), (8, 0.5))),
        "motion_blur": ("motion_blur", ((10, 5), (15, 5), (15, 8), (15, 12), (20, 15))),
        "zoom_blur": (
            "zoom_blur",
            _zoom(
                (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02), (1, 1.31, 0.03)
            ),
        ),
        "brightness_up": _BRIGHT_UP,
        "brightness_down": _BRIGHT_DOWN,
        "contrast_up": _CONTRAST_UP,
        "contrast_down": ("contrast", (0.8, 0.7, 0.6, 0.5, 0.4)),
    },
    "retinamnist": {
        "pixelate": ("pixelate", (0.8, 0.60, 0.50, 0.40, 0.35)),
        "jpeg_compression": ("jpeg_compression", (30, 25, 20, 10, 5)),
        "gaussian_noise": ("gaussian_noise", (0.04, 0.08, 0.12, 0.16, 0.20)),
        "speckle_noise": ("speckle_noise", (0.10, 0.15, 0.20, 0.25, 0.30)),
        "defocus_blur": ("defocus_blur", ((4, 0.1), (5, 0.2), (6, 0.3), (7, 0.4), (8, 0.5))),
        "motion_blur": ("motion_blur", ((8, 5), (15, 5), (15, 8), (15, 12), (20, 15))),
        "brightness_down": _BRIGHT_DOWN,
        "contrast_down": ("contrast", _DOWN_90_40),
    },
    "tissuemnist": {
        "pixelate": ("pixelate", (0.40, 0.30, 0.20, 0.15, 0.10)),
        "jpeg_compression": ("jpeg_compression", (25, 20, 15, 10, 7)),
        "impulse_noise": ("impulse_noise", (0.01, 0.015, 0.02, 0.025, 0.03)),
        "gaussian_blur": ("gaussian_blur", (13, 15, 17, 21, 25)),
        "brightness_up": ("brightness", (1.3, 1.4, 1.5, 1.6, 1.7)),
        "brightness_down": ("brightness", (0.8, 0.7, 0.6, 0.5, 0.4)),
        "contrast_up": _CONTRAST_UP,
        "contrast_down": ("contrast", _DOWN_90_40),
    },
    "octmnist": {
        "pixelate": ("pixelate", (0.30, 0.25, 0.20, 0.15, 0.10)),
        "jpeg_compression": ("jpeg_compression", (30, 15, 10, 7, 5)),
        "speckle_noise": ("speckle_noise", (0.15, 0.30, 0.40, 0.50, 0.60)),
        "defocus_blur": (
            "defocus_blur",
            ((0.5, 0.6), (1, 0.5), (1.5, 0.1), (2.0, 0.5), (2.5, 0.1)),
        ),
        "motion_blur": ("motion_blur", ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))),
        "contrast_down": ("contrast", (0.6, 0.4, 0.3, 0.2, 0.15)),
    },
    "breastmnist": {
        "pixelate": ("pixelate", (0.30, 0.25, 0.20, 0.15, 0.10)),
        "jpeg_compression": _JPEG_50,
        "speckle_noise": ("speckle_noise", (0.10, 0.15, 0.20, 0.25, 0.30)),
        "motion_blur": ("motion_blur", ((5, 5), (9, 7), (9, 10), (13, 10), (17, 12))),
        "brightness_up": ("brightness", (1.4, 1.5, 1.6, 1.8, 2.0)),
        "brightness_down": ("brightness", (0.55, 0.5, 0.45, 0.4, 0.3)),
        "contrast_down": ("contrast", _DOWN_90_40),
    },
    "chestmnist": {
        "pixelate": ("pixelate", (0.30, 0.25, 0.20, 0.15, 0.10)),
        "jpeg_compression": _JPEG_50,
        **_NOISE_CHEST,
        "gaussian_blur": _XRAY["gaussian_blur"],
        "brightness_up": _BRIGHT_UP,
        "brightness_down": _BRIGHT_DOWN,
        "contrast_up": _CONTRAST_UP,
        "contrast_down": ("contrast", _DOWN_90_40),
        "gamma_corr_up": _XRAY["gamma_corr_up"],
        "gamma_corr_down": _XRAY["gamma_corr_down"],
    },
    "pneumoniamnist": {
        "pixelate": ("pixelate", (0.8, 0.7, 0.6, 0.5, 0.40)),
        "jpeg_compression": _JPEG_50,
        "gaussian_noise": ("gaussian_noise", (0.04, 0.05, 0.06, 0.07, 0.08)),
        "speckle_noise": ("speckle_noise", (0.05, 0.07, 0.10, 0.15, 0.20)),
        "impulse_noise": ("impulse_noise", (0.005, 0.01, 0.013, 0.017, 0.02)),
        "shot_noise": ("shot_noise", (300, 200, 150, 100, 80)),
        "gaussian_blur": _XRAY["gaussian_blur"],
        "brightness_up": _BRIGHT_UP,
        "brightness_down": _BRIGHT_DOWN,
        "contrast_up": _CONTRAST_UP,
        "contrast_down": ("contrast", _DOWN_90_40),
        "gamma_corr_up": _XRAY["gamma_corr_up"],
        "gamma_corr_down": _XRAY["gamma_corr_down"],
    },
    "organamnist": _ORGAN,
    "organcmnist": _ORGAN,
    "organsmnist": _ORGAN,
}

_SIZE_SUFFIX = re.compile(r"_(28|64|128|224)$")


def official_set_name(source: str | Path | None) -> str | None:
    """The :data:`OFFICIAL_SETS` key for a MedMNIST file name, or ``None``.

    ``".../retinamnist.npz"`` and ``"retinamnist_224.npz"`` give ``"retinamnist"``; a bare
    key is accepted as is; folders, CSVs, 3D sets and unknown names give ``None``.
    """
    if not source:
        return None
    stem = Path(str(source)).name.lower()
    stem = stem[: -len(".npz")] if stem.endswith(".npz") else stem
    stem = _SIZE_SUFFIX.sub("", stem)
    return stem if stem in OFFICIAL_SETS else None
