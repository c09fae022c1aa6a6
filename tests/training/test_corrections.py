"""Label names and case ids of an export of corrected labels (``medseg.training.corrections``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.errors import InputError
from medseg.io.image import Image
from medseg.training.corrections import (
    CorrectedCase,
    case_id_for,
    merge_label_names,
    write_corrections_dataset,
)


def _case(source: str, names: dict[int, str], channels: int = 1) -> CorrectedCase:
    return CorrectedCase(
        case_id=case_id_for(source),
        source=source,
        num_channels=channels,
        modality="CT",
        image_path=None,
        load_image=lambda: Image(np.zeros((2, 3, 4), np.float32)),
        label_path=Path(f"/nowhere/{source}/v0001.nii.gz"),
        label_names=names,
        version=1,
    )


def test_case_ids() -> None:
    assert case_id_for("a/b 1.nii.gz") == "a_b_1"
    assert case_id_for("scan.v2.NII") == "scan.v2"
    assert case_id_for("x__y.png") == "x_y"
    assert case_id_for("ct/series_1234abcd") == "ct_series_1234abcd"
    with pytest.raises(InputError, match="no usable case id"):
        case_id_for("__.png")


def test_merge_label_names() -> None:
    a, b = _case("a.nii", {1: "liver"}), _case("b.nii", {1: "liver", 2: "kidney"})
    assert merge_label_names([a, b]) == {"background": 0, "liver": 1, "kidney": 2}
    c = _case("c.nii", {2: "spleen"})
    with pytest.raises(InputError, match=r"label value 2 is 'kidney' in b\.nii but 'spleen' in "
                       r"c\.nii; .* --names 2=kidney"):  # fmt: skip
        merge_label_names([a, b, c])
    assert merge_label_names([a, b, c], {1: "liver", 2: "organ"}) == {
        "background": 0, "liver": 1, "organ": 2,
    }  # fmt: skip
    with pytest.raises(InputError, match=r"c.nii: label values \[2\] are not in --names"):
        merge_label_names([c], {1: "liver"})
    with pytest.raises(InputError, match="label name 'liver' is given to values 1 and 3"):
        merge_label_names([a, _case("d.nii", {3: "liver"})])
    with pytest.raises(InputError, match="label value 1 is named 'background', the name of 0"):
        merge_label_names([_case("e.nii", {1: "background"})])
    with pytest.raises(InputError, match="values must be >= 1"):
        merge_label_names([a], {0: "x", 1: "liver"})


def test_refusals_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    a = _case("a.nii", {1: "liver"})
    with pytest.raises(InputError, match="different channel counts"):
        write_corrections_dataset([a, _case("b.nii", {1: "liver"}, channels=2)], out)
    with pytest.raises(InputError, match=r"images \['a.nii', 'a.nii.gz'\] give the same case"):
        write_corrections_dataset([a, _case("a.nii.gz", {1: "liver"})], out)
    png = CorrectedCase(**{**a.__dict__, "case_id": "p", "label_path": Path("/x/v0001.png")})
    with pytest.raises(InputError, match=r"mix 2D \(.png\) and 3D \(.nii.gz\)"):
        write_corrections_dataset([a, png], out)
    with pytest.raises(InputError, match="nothing to export"):
        write_corrections_dataset([], out)
    assert not out.exists()
