"""Predictor error messages reworded with the ``medseg segment`` options that set them."""

from __future__ import annotations

import pytest

from medseg.cli.segment_output import cli_prompt_message

# (message as medseg.inference.predictor raises it, as the CLI prints it)
CASES = [
    (
        "this image is 3D: give slice_index=z with the 2D prompt, or box3d="
        "(x0, y0, z0, x1, y1, z1)",
        "this image is 3D: give --slice Z with the 2D prompt, or --box3d X0,Y0,Z0,X1,Y1,Z1",
    ),
    (
        "an auto model's mask is corrected one class and slice at a time: give box=, "
        "points= or scribbles= (with slice_index= on a volume), not boxes= or box3d=",
        "an auto model's mask is corrected one class and slice at a time: give --box, "
        "--point or --scribble (with --slice on a volume), not several --box or a --box3d",
    ),
    (
        "give either box3d= or box=/boxes= with slice_index, not both",
        "give either --box3d or --box with --slice, not both",
    ),
    (
        "slice_index 7 is outside box3d's z range (2, 5)",
        "--slice 7 is outside the --box3d z range (2, 5)",
    ),
    (
        "slice_index and box3d need a 3D image; this image is 2D",
        "--slice and --box3d need a 3D image; this image is 2D",
    ),
    (
        "label= picks a class of a medseg auto model (Predictor(MODEL_DIR))",
        "--label picks a class of a medseg auto model (--model MODEL_DIR)",
    ),
    (
        "no prompt given: pass box=, points=, scribbles= or mask_input=",
        "no prompt given: pass --box, --point or --scribble",
    ),
    (
        "this image is 3D: give slice_index=z, the slice of the prompts",
        "this image is 3D: give --slice Z, the slice of the prompts",
    ),
]


@pytest.mark.parametrize(("api", "cli"), CASES)
def test_translated(api: str, cli: str) -> None:
    assert cli_prompt_message(api) == cli


def test_already_translated_text_is_left_alone() -> None:
    for _, cli in CASES:
        assert cli_prompt_message(cli) == cli
