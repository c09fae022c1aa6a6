"""``medseg segment``: promptable segmentation of a 2D image or a 3D volume from the command line.

Examples::

    medseg segment chest.png -o lung.png --box 60,80,250,400
    medseg segment ct.nii.gz -o kidney.nii.gz --box 40,30,70,60 --slice 12 --overlay k.png
    medseg segment ct.nii.gz -o liver.nii.gz --box3d 10,20,3,90,80,25
    medseg segment dicom_dir/ -o seg.nii.gz --point 250,260,10:1 --point 240,200,10:0
    medseg segment slide.png -o cell.png --scribble "40,50;60,52;70,60:1" --scribble "5,5;5,90:0"
    medseg segment ct.nii.gz -o organ.nii.gz --slice 30 --scribble-mask strokes.png
    medseg segment ct.nii.gz -o organs.nii.gz --model runs/x
    medseg segment ct.nii.gz -o kidney.nii.gz --model runs/x --label 2 --point 50,40,12:0
    medseg segment ct.nii.gz -o organs.nii.gz --text "left kidney" --text spleen
    medseg segment --list-targets CT
    medseg segment dicomweb://127.0.0.1:8042/dicom-web/studies/S/series/R -o seg.dcm \
        --box3d 10,20,3,90,80,25 --push

The default model, ``default`` (``litemedsam+interactive``: LiteMedSAM for a box, its 3D
propagation included, medseg-interactive for clicks, scribbles and corrections), takes every
prompt kind; LiteMedSAM alone (``--model litemedsam``) takes boxes only.
Coordinates are 0-based array indices ``x`` (column), ``y`` (row), ``z`` (``--slice``) of
the image as stored, as the web app's cursor readout and "Copy as CLI" show them; volumes
are segmented on their slices as the app shows them (radiological orientation), so a box
gives the app's mask (see README, "Coordinates").
``--model MODEL_DIR``, a folder written by ``medseg auto train``/``run``, segments
without prompts (the whole label map, or class ``--label K``); with prompts it
writes class K (default: the first foreground class) as corrected by
``medseg-interactive`` from the automatic mask, as label value K.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path
from typing import Any

from medseg.cli.arguments import ENCODER_BACKENDS
from medseg.cli.auto_options import add_auto_predict_options, auto_predict_options
from medseg.cli.image_input import check_push, image_ref, load_input, push_seg, source_of
from medseg.cli.prompt_args import command_prompts
from medseg.cli.segment_output import (
    ListTargets,
    cli_prompt_message,
    output_values,
    parse_label_values,
    relabel,
    save_segment_overlay,
    size_text,
    text_line,
    text_prompts,
)
from medseg.errors import InputError, PromptError

NAME = "segment"
HELP = "segment objects in an image or volume from box, point and scribble prompts"

log = logging.getLogger(__name__)

__all__ = [
    "NAME",
    "HELP",
    "add_arguments",
    "run",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``segment`` options to ``parser``, in the order ``--help`` lists them."""
    _add_input_output(parser)
    _add_model(parser)
    _add_prompts(parser)
    _add_label_values(parser)
    _add_display_and_runtime(parser)
    add_auto_predict_options(parser)


def _add_input_output(parser: argparse.ArgumentParser) -> None:
    """The image to segment, ``--push``, ``--output`` and ``--allow-irregular-slices``."""
    parser.add_argument(
        "image",
        type=image_ref,
        help="image file, DICOM series folder, or DICOMweb series "
        "dicomweb://host:port/prefix/studies/STUDY/series/SERIES",
    )
    parser.add_argument(
        "--push",
        action="store_true",
        help="store the DICOM-SEG output (.dcm) on the input's DICOMweb server (STOW-RS)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="label map to write; format from the extension (no extension: the input's; "
        "a DICOM input gives a DICOM-SEG .dcm that references it)",
    )
    parser.add_argument(
        "--allow-irregular-slices",
        action="store_true",
        help="read a DICOM series with irregular slice gaps on a regular grid with the mean "
        "gap (default: refuse)",
    )


def _add_model(parser: argparse.ArgumentParser) -> None:
    """``--model`` (a promptable model or a medseg auto model folder) and ``--label``."""
    parser.add_argument(
        "--model",
        default="default",
        help="promptable model name (default: the best one on held-out data; see docs/models.md)"
        " or a medseg auto model folder (automatic segmentation; prompts then correct it)",
    )
    parser.add_argument(
        "--label",
        type=int,
        metavar="K",
        help="with --model MODEL_DIR: the class to write or correct (default: all classes "
        "without prompts, the first foreground class with prompts)",
    )


def _add_prompts(parser: argparse.ArgumentParser) -> None:
    """The prompts: boxes, ``--slice``, points, scribbles, text targets (and
    ``--list-targets``) and a scribble mask."""
    parser.add_argument(
        "--box", action="append", default=[], metavar="X0,Y0,X1,Y1", help="box (repeatable)"
    )
    parser.add_argument("--box3d", metavar="X0,Y0,Z0,X1,Y1,Z1", help="3D box (volumes)")
    parser.add_argument("--slice", type=int, help="slice the 2D prompts are on (volumes)")
    parser.add_argument(
        "--point",
        action="append",
        default=[],
        metavar="X,Y[,Z][:L]",
        help="point, label 1 = foreground (default) or 0 = background (repeatable)",
    )
    parser.add_argument(
        "--scribble",
        action="append",
        default=[],
        metavar="X,Y;X,Y;...[:L]",
        help="scribble polyline, label 1 = foreground (default) or 0 (repeatable; on --slice)",
    )
    parser.add_argument(
        "--text",
        action="append",
        default=[],
        metavar="PHRASE",
        help='a target to find by name, e.g. "left kidney" (repeatable: one object each; '
        "--point corrects a single one; a target not in the image gives an empty mask)",
    )
    parser.add_argument(
        "--list-targets",
        action=ListTargets,
        nargs="?",
        const="",
        metavar="MODALITY",
        help="print the names --text knows (only those of MODALITY, e.g. CT) and exit",
    )
    parser.add_argument(
        "--scribble-mask",
        type=Path,
        help="label image of scribbles (1 = positive, 2 = negative), the image's or slice's size",
    )


def _add_label_values(parser: argparse.ArgumentParser) -> None:
    """The "output label values" group: ``--label-value`` and ``--one-label``."""
    values = parser.add_argument_group(
        "output label values",
        "Written by default: object i (the i-th --box, in the order given) as value i, "
        "one object (value 1) for --box3d, points and scribbles; with --model MODEL_DIR "
        "each class as its own value K (0 = background everywhere).",
    )
    values.add_argument(
        "--label-value",
        type=parse_label_values,
        metavar="K[,K2,...]",
        help="write every object as value K, or object i as the i-th value (one per --box; "
        "with --model MODEL_DIR one per class written)",
    )
    values.add_argument(
        "--one-label",
        action="store_true",
        help="write every object as value 1 (one binary mask; same as --label-value 1)",
    )


def _add_display_and_runtime(parser: argparse.ArgumentParser) -> None:
    """``--overlay``, ``--window``, ``--modality`` and the encoder's ``--backend`` and
    ``--cache-dir``."""
    parser.add_argument(
        "--overlay",
        type=Path,
        help="also write an overlay PNG (the mask, boxes, points and scribbles on the "
        "prompted slice, shown as the web app shows it: radiological orientation)",
    )
    parser.add_argument("--window", help="CT window preset (default soft_tissue for CT)")
    parser.add_argument("--modality", help="override the image's modality (e.g. CT, MR)")
    parser.add_argument("--backend", choices=ENCODER_BACKENDS, help="image encoder runtime")
    parser.add_argument(
        "--propagation",
        choices=("keyframes", "slices"),
        help="3D propagation rule (volumes): keyframes (default: encodes a few slices and "
        "interpolates, 2-3x faster) or slices (encodes every slice; better from a box alone "
        "on thin structures such as the spinal cord, docs/benchmarks.md)",
    )
    parser.add_argument("--cache-dir", type=Path, help="folder for the ONNX export cache")


def _has_prompt(kw: dict[str, Any]) -> bool:
    return bool({"box", "boxes", "box3d", "points", "scribbles", "text", "texts"} & kw.keys())


def _is_auto_model(name: str) -> bool:
    """True when ``--model`` names a model folder (a medseg auto model) rather than a
    registered model."""
    from medseg.automatic.segmenter import model_folder
    from medseg.models.registry import is_model

    return not is_model(name) and model_folder(name) is not None


def _output_path(args: argparse.Namespace, image: Any) -> Path:
    out: Path = args.output
    if out.suffix:
        return out
    if image.meta.get("format") == "dicom":  # DICOM in, DICOM-SEG out
        return out.with_name(out.name + ".dcm")
    src = Path(str(image.meta.get("path") or args.image))
    suffix = "".join(src.suffixes) if src.is_file() else ""
    return out.with_name(out.name + (suffix or ".nii.gz"))


def _write(args: argparse.Namespace, image: Any, label_map: Any, out: Path) -> Path:
    """Write the label map: DICOM-SEG for a ``.dcm`` output (DICOM input only), else by
    extension with ``medseg.io.save``."""
    import medseg.io as mio

    if out.suffix.lower() == ".dcm":
        return Path(mio.save_dicom_seg(label_map, source_of(args), out))
    return Path(mio.save(label_map, out))


def _predict(predictor: Any, **kw: Any) -> Any:
    """``predictor.predict`` with errors worded in this command's options."""
    try:
        return predictor.predict(**kw)
    except PromptError as exc:
        raise PromptError(cli_prompt_message(str(exc))) from exc


def _segment_prompted(
    predictor: Any, kw: dict[str, Any], image: Any, values: Any
) -> tuple[Any, int | None]:
    """Promptable segmentation: (label map of the objects, slice for the overlay)."""
    import numpy as np

    result = _predict(predictor, **kw)
    n_obj = result.num_objects
    if isinstance(values, list) and len(values) != n_obj:
        raise PromptError(
            f"--label-value has {len(values)} values for {n_obj} object(s): give one value, "
            "or one per --box"
        )
    labels = result.to_label_map(values=values)
    for i in range(n_obj):
        k = (values if isinstance(values, int) else values[i]) if values is not None else i + 1
        n = int(np.count_nonzero(result.labels == i + 1))
        extra = f" slices {result.slice_ranges[i]}" if result.slice_ranges else ""
        score = float(result.scores[i])
        named = text_line(result, i)
        if named is not None and not result.found[i]:
            print(f"object {i + 1}: {named}")
            continue
        named = "" if named is None else f" {named}"
        print(f"object {i + 1}{named}: label {k}, {size_text(n, image)}, score {score:.3f}{extra}")
    return labels, result.info.get("start_slice")


def _segment_auto(
    args: argparse.Namespace, predictor: Any, kw: dict[str, Any], image: Any, values: Any
) -> tuple[Any, int | None]:
    """Auto model: the label map (all classes or ``--label``) without prompts, else the
    corrected class as label value K (``values`` rewrites them, see ``relabel``); returns
    it with the slice for the overlay."""
    import numpy as np

    from medseg.io.image import LabelMap

    auto = predictor.auto
    if _has_prompt(kw):  # the CLI's default class: the model's first foreground class
        label = auto.default_label if args.label is None else args.label
        result = _predict(predictor, label=label, **kw)
        k, z = result.info["label"], result.info.get("start_slice")
        arr = np.where(result.mask, k, 0).astype(np.uint16 if k > 255 else np.uint8)
        labels = LabelMap.like(image, arr, label_names={k: auto.label_names[k]})
    else:
        labels, z = predictor.segment_all(), None
        if args.label is not None:
            k = auto.check_label(args.label)
            arr = np.where(labels.array == k, labels.array, 0)
            labels = LabelMap.like(image, arr, label_names={k: auto.label_names[k]})
    labels = relabel(labels, values)
    for value, name in labels.label_names.items():
        if value:  # 0 is background
            n = int(np.count_nonzero(labels.array == value))
            print(f"label {value} ({name}): {size_text(n, image)}")
    if z is None and image.ndim == 3:  # overlay: the slice with the most foreground
        z = int(np.argmax(labels.array.reshape(labels.shape[0], -1).astype(bool).sum(1)))
    return labels, z


def run(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:  # a fetched DICOMweb series lives until the end
        return _run(args, stack)


def _run(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    from medseg.inference.predictor import Predictor

    irregular = "mean" if args.allow_irregular_slices else "error"
    image = load_input(args, stack, irregular=irregular)
    kw = text_prompts(args.text, command_prompts(args, tuple(image.shape)))
    auto = _is_auto_model(args.model)
    if not _has_prompt(kw) and not auto:
        raise PromptError(
            "give at least one prompt: --box, --box3d, --point, --scribble or --text (only a "
            "medseg auto model, --model MODEL_DIR, segments without prompts)"
        )
    if args.label is not None and not auto:
        raise PromptError(
            f"--label {args.label} picks a class of a medseg auto model and needs --model "
            f"MODEL_DIR (a folder written by medseg auto train/run); to write the objects as "
            f"label value {args.label}, use --label-value {args.label}"
        )
    values = output_values(args)
    out = _output_path(args, image)
    if out.suffix.lower() == ".dcm" and image.meta.get("format") != "dicom":
        raise InputError("a DICOM-SEG output (.dcm) needs a DICOM input")
    check_push(args, out)
    overrides = {k: v for k, v in (("backend", args.backend), ("cache_dir", args.cache_dir)) if v}
    if "cache_dir" in overrides:
        overrides["cache_dir"] = str(overrides["cache_dir"])
    if auto:
        overrides |= auto_predict_options(args)
    if args.propagation:
        from medseg.inference.propagation import PropagationConfig

        overrides["propagation"] = PropagationConfig(algorithm=args.propagation)
    predictor = Predictor(args.model, window=args.window, **overrides)
    # prompts: array indices; the model sees the slices as the app shows them (view_frame)
    predictor.set_image(image, modality=args.modality)
    if predictor.auto is not None:
        labels, z = _segment_auto(args, predictor, kw, image, values)
    else:
        labels, z = _segment_prompted(predictor, kw, image, values)
    out = _write(args, image, labels, out)
    print(f"wrote {out}")
    pushed = push_seg(args, out)
    if pushed:
        print(f"stored {out.name} on {pushed}")
    if args.overlay:
        save_segment_overlay(args.overlay, image, labels, z, kw)
        print(f"wrote {args.overlay}")
    return 0
