"""``medseg demo``: segment the built-in sample CT and write a mask plus an overlay PNG."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

NAME = "demo"
HELP = "segment the built-in sample CT slice and write mask.png + overlay.png"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("medseg_demo"), help="output folder")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image as PILImage
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    from medseg.data.samples import SAMPLE_CT_BOX, sample_ct
    from medseg.io.atomic import atomic_path
    from medseg.io.overlay import save_overlay

    image = sample_ct()
    x0, y0, x1, y1 = SAMPLE_CT_BOX
    crop = image.array[y0:y1, x0:x1]
    # Classical box-prompted segmentation: Otsu inside the box, keep the component
    # under the box centre (the promptable model replaces this in the Predictor).
    inside = crop < threshold_otsu(crop)
    comps, _ = ndimage.label(inside)
    centre = comps[crop.shape[0] // 2, crop.shape[1] // 2]
    mask = np.zeros(image.shape, dtype=np.uint8)
    mask[y0:y1, x0:x1] = (comps == centre) & (centre > 0)
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / "mask.png") as tmp:
        PILImage.fromarray(mask * 255).save(tmp, format="PNG")
    save_overlay(args.out / "overlay.png", image, mask, boxes=[SAMPLE_CT_BOX])
    area = float(mask.sum() * np.prod(image.spacing))
    log.info("sample: %s", image.meta["description"])
    log.info("segmented %d pixels (%.1f mm^2) in box %s", int(mask.sum()), area, SAMPLE_CT_BOX)
    log.info("wrote %s and %s", args.out / "mask.png", args.out / "overlay.png")
    return 0
