"""``medseg convert``: read any supported input and write it in the format of OUT's extension.

Examples::

    medseg convert dicom_dir/ ct.nii.gz
    medseg convert ct.nrrd ct.mha
    medseg convert labels.nrrd labels.nii.gz --label
    medseg convert slice.dcm slice.png --display          # 8-bit view (CT window)
    medseg convert labels.nii.gz seg.dcm --label --source dicom_dir/   # DICOM-SEG
    medseg convert retinamnist.npz r0.png --key train_images --index 0
    medseg convert CT_DICOM/ ct.nii.gz --allow-irregular-slices   # mean-gap grid
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from medseg.cli.commands.info import add_read_options, read_options

NAME = "convert"
HELP = "convert an image or label map between NIfTI, NRRD, MHA, DICOM, PNG, TIFF and NumPy"

log = logging.getLogger(__name__)

__all__ = ["NAME", "HELP", "add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, metavar="IN", help="image file or DICOM folder")
    parser.add_argument(
        "output", type=Path, metavar="OUT", help="output file (format by extension)"
    )
    parser.add_argument("--series", metavar="UID", help="series to read from a DICOM folder")
    parser.add_argument("--label", action="store_true", help="treat the input as a label map")
    add_read_options(parser)
    parser.add_argument(
        "--display",
        action="store_true",
        help="write an 8-bit display rendering (CT window for CT, else 0.5-99.5 percentiles)",
    )
    parser.add_argument(
        "--window", metavar="NAME", help="CT window for --display (soft_tissue, lung, bone, ...)"
    )
    parser.add_argument(
        "--source",
        type=Path,
        metavar="DICOM_DIR",
        help="source series for a DICOM-SEG output (OUT ending in .dcm, with --label)",
    )


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from medseg.errors import InputError
    from medseg.io import display_window, load, load_label, save, save_dicom_seg

    is_dcm = args.output.name.lower().endswith(".dcm")
    if args.label and args.display:
        raise InputError("--display renders images; it cannot be combined with --label")
    if args.window and not args.display:
        raise InputError("--window only applies with --display")
    if is_dcm and not (args.label and args.source):
        raise InputError(
            f"{args.output}: DICOM output is DICOM-SEG: use --label --source DICOM_DIR"
        )
    if args.source and not is_dcm:
        raise InputError("--source is only used for DICOM-SEG output (OUT ending in .dcm)")
    options = read_options(args)
    obj = load_label(args.input, **options) if args.label else load(args.input, **options)
    if args.display:
        unit = display_window(obj.array, modality=obj.modality, window=args.window)
        obj = obj.with_array((unit * 255).round().astype(np.uint8))
    if is_dcm:
        irregular = options["irregular"]
        out = save_dicom_seg(obj, args.source, args.output, irregular=irregular)
    else:
        out = save(obj, args.output)
    print(f"wrote {out}: shape {tuple(obj.array.shape)} {obj.array.dtype}")
    return 0
