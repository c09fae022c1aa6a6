"""What ``medseg segment`` writes and prints: output label values, object sizes in the
right unit, CLI wording of prompt errors, the ``--overlay`` PNG, and the ``--text`` /
``--list-targets`` options."""

from __future__ import annotations

import argparse
import re
from typing import Any

import numpy as np

from medseg.errors import PromptError

__all__ = [
    "GEOMETRY_FORMATS",
    "spacing_known",
    "size_text",
    "parse_label_values",
    "output_values",
    "relabel",
    "cli_prompt_message",
    "save_segment_overlay",
    "ListTargets",
    "text_prompts",
    "text_line",
]

#: Formats whose files carry voxel spacing (rasters and NumPy arrays do not).
GEOMETRY_FORMATS = frozenset({"nifti", "nrrd", "metaimage", "dicom"})


def spacing_known(image: Any) -> bool:
    """True when the image's spacing came from its file (NIfTI, NRRD, MetaImage, DICOM) or
    differs from the unit spacing medseg gives images without geometry."""
    if image.meta.get("format") in GEOMETRY_FORMATS:
        return True
    return any(abs(s - 1.0) > 1e-9 for s in image.spacing)


def size_text(count: int, image: Any) -> str:
    """``"40095 pixels"`` (2D) / ``"812 voxels"`` (3D), plus the area or volume in mm
    (``", 40.1 mm^2"``) only when the spacing is known (see :func:`spacing_known`)."""
    text = f"{count} {'voxels' if image.ndim == 3 else 'pixels'}"
    if spacing_known(image):
        text += f", {count * float(np.prod(image.spacing)):.1f} mm^{image.ndim}"
    return text


def parse_label_values(text: str) -> list[int]:
    """``"2"`` -> ``[2]``, ``"1,3"`` -> ``[1, 3]``; every value 1..65535 (an argparse type)."""
    try:
        values = [int(v) for v in str(text).split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid label value {text!r}: give K or K1,K2,... (integers 1..65535)"
        ) from None
    bad = [v for v in values if not 1 <= v <= 65535]
    if bad:
        raise argparse.ArgumentTypeError(f"label value {bad[0]} must be from 1 to 65535")
    return values


def output_values(args: argparse.Namespace) -> int | list[int] | None:
    """The label values ``--label-value`` / ``--one-label`` ask for: None (default
    numbering), one int for every object, or one value per object."""
    values = args.label_value
    if args.one_label:
        if values is not None:
            raise PromptError("give --one-label or --label-value, not both")
        return 1
    if values is None:
        return None
    return values[0] if len(values) == 1 else values


def relabel(labels: Any, values: int | list[int] | None) -> Any:
    """An automatic model's label map with its classes written as ``values``: one int
    writes every foreground voxel as it, a list gives one value per class in the order of
    ``labels.label_names``; class names follow their class."""
    from medseg.io.image import LabelMap

    if values is None:
        return labels
    classes = [k for k in labels.label_names if k]
    per_class = [values] * len(classes) if isinstance(values, int) else list(values)
    if len(per_class) != len(classes):
        raise PromptError(
            f"--label-value has {len(per_class)} values for {len(classes)} classes "
            f"({', '.join(map(str, classes))}): give one value, or one per class"
        )
    arr = np.asarray(labels.array)
    top = max(per_class, default=1)
    out = np.zeros(arr.shape, np.uint8 if top <= 255 else np.uint16)
    names: dict[int, str] = {}
    for k, v in zip(classes, per_class, strict=True):
        out[arr == k] = v
        name = labels.label_names[k]
        names[v] = f"{names[v]}+{name}" if v in names else name
    return LabelMap(
        array=out,
        spacing=labels.spacing,
        origin=labels.origin,
        direction=labels.direction,
        modality=labels.modality,
        meta=dict(labels.meta),
        label_names=names,
    )


# API argument wording -> the ``medseg segment`` option that sets it (whole phrases first,
# so that e.g. "not boxes= or box3d=" does not become "not --box or --box3d" after "give --box").
_CLI_WORDS = (
    (r"\bbox3d=\(x0, y0, z0, x1, y1, z1\)", "--box3d X0,Y0,Z0,X1,Y1,Z1"),
    (r"\bnot boxes= or box3d=", "not several --box or a --box3d"),
    (r"\bbox3d's z range", "the --box3d z range"),
    (r" \(Predictor\(MODEL_DIR\)\)", " (--model MODEL_DIR)"),
    (r", scribbles= or mask_input=", " or --scribble"),
    (r"slice_index=z\b", "--slice Z"),
    (r"\bslice_index=?", "--slice"),
    (r"(?<![-\w])box3d\b=?", "--box3d"),
    (r"\bbox=/boxes=", "--box"),
    (r"\bboxes=", "--box"),
    (r"\bbox=", "--box"),
    (r"\bpoints=", "--point"),
    (r"\bscribbles=", "--scribble"),
    (r"\blabel=", "--label"),
)


def cli_prompt_message(message: str) -> str:
    """A Predictor error message with API argument names (``slice_index=z``, ``box3d=``)
    replaced by the ``medseg segment`` options that set them (``--slice Z``, ``--box3d``)."""
    for pattern, option in _CLI_WORDS:
        message = re.sub(pattern, option, message)
    return message


def save_segment_overlay(
    path: Any, image: Any, labels: Any, z: int | None, kw: dict[str, Any]
) -> None:
    """Write ``--overlay``: the label map on slice ``z`` (3D) with the prompts of ``kw``
    (the predict() keywords: boxes, a box3d's x/y extent, points, scribbles)."""
    from medseg.io.overlay import save_overlay

    boxes = [kw["box"]] if "box" in kw else kw.get("boxes", [])
    if "box3d" in kw:
        b = kw["box3d"]
        boxes = [(b[0], b[1], b[3], b[4])]
    save_overlay(
        path,
        image,
        labels.array,
        slice_index=z,
        boxes=boxes,
        points=kw.get("points", ()),
        point_labels=kw.get("point_labels", ()),
        scribbles=kw.get("scribbles", ()),
    )


class ListTargets(argparse.Action):
    """``--list-targets [MODALITY]``: print the text-prompt vocabulary and exit."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None):
        from medseg.prompts.text import list_targets, modality_code

        targets = list_targets()
        if values:
            code = modality_code(values) or values
            targets = [t for t in targets if code in t.modalities]
        if not targets:
            known = sorted({m for t in list_targets() for m in t.modalities})
            parser.exit(2, f"no text targets for modality {values!r}; known: {', '.join(known)}\n")
        for t in targets:
            syn = f"  (also: {', '.join(t.synonyms)})" if t.synonyms else ""
            print(f"{t.name}  [{', '.join(t.modalities)}]{syn}")
        parser.exit(0, f"{len(targets)} targets\n")


def text_prompts(texts: list[str], kw: dict[str, Any]) -> dict[str, Any]:
    """Add ``--text`` phrases to the predict() keywords ``kw`` (one: ``text=``, several:
    ``texts=``); other prompts than clicks cannot go with them."""
    if not texts:
        return kw
    others = sorted({"box", "boxes", "box3d", "scribbles"} & kw.keys())
    if others:
        opts = {"box": "--box", "boxes": "--box", "box3d": "--box3d", "scribbles": "--scribble"}
        given = ", ".join(dict.fromkeys(opts[k] for k in others))
        raise PromptError(f"--text takes --point corrections only, not {given}")
    if len(texts) > 1 and "points" in kw:
        raise PromptError("--point corrects one --text target: give one --text with --point")
    return {**kw, "text": texts[0]} if len(texts) == 1 else {**kw, "texts": list(texts)}


def text_line(result: Any, i: int) -> str | None:
    """``' "left kidney" (presence 0.93)'`` / not-found wording for object ``i`` of a text
    result, or None for other results."""
    text = result.info.get("text")
    if not text:
        return None
    t = text[i]
    if not t["found"]:
        return f"{t['text']!r}: not found (presence {t['presence']:.2f}); empty mask written"
    return f"{t['text']!r} ({t['target']}, presence {t['presence']:.2f})"
