"""The text head's training slices (benchmarks/text_data.py) are the slices the Predictor
segments: the app's display views (``Predictor.set_image(frame="view")``), not the array's
storage order, with the label cut the same way (issue 16: a RAS NIfTI was trained turned
180 degrees from what ``predict(text=...)`` shows the head)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from medseg.inference.predictor import Predictor
from medseg.io import load, save
from medseg.io.image import Image
from medseg.io.orientation import view_image
from medseg.models.base import Decoded, PromptableModel

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
text_data = pytest.importorskip("text_data")

RAS = np.diag([-1.0, -1.0, 1.0])  # a NIfTI in RAS: rows and columns reversed in LPS


class _Echo(PromptableModel):
    """Fake model whose embedding is the normalised slice it was given."""

    name = "echo"
    prompt_kinds = frozenset({"box"})

    def encode(self, image: np.ndarray) -> np.ndarray:
        return np.array(image, copy=True)

    def decode(self, embedding, prompts, *, multimask=False):  # type: ignore[no-untyped-def]
        h, w = embedding.shape
        return Decoded(np.zeros((1, 1, h, w), np.float32), np.ones((1, 1), np.float32))


def _volume(tmp: Path) -> tuple[Path, np.ndarray]:
    """A CT-like RAS volume ``(20, 40, 36)`` with a bright block off-centre in every axis
    (its label is 1), as a one-case ``totalseg_ref`` dataset of a manifest under ``tmp``."""
    hu = np.full((20, 40, 36), -1000.0, np.float32)
    hu[:, 4:36, 4:32] = 40.0  # body
    hu[2:9, 6:14, 22:30] = 300.0  # the "organ": low z, low y, high x
    lab = (hu == 300.0).astype(np.uint8)
    root = tmp / "data"
    (root / "totalseg_ref").mkdir(parents=True)
    save(Image(hu, spacing=(3.0, 2.0, 2.0), direction=RAS), root / "totalseg_ref" / "ct.nii.gz")
    save(Image(lab, spacing=(3.0, 2.0, 2.0), direction=RAS), root / "totalseg_ref" / "lab.nii.gz")
    case = {"id": "ct", "images": ["totalseg_ref/ct.nii.gz"], "label": "totalseg_ref/lab.nii.gz"}
    ds = {"name": "totalseg_ref", "dims": 3, "task": "semantic",
          "label_names": {"0": "background", "1": "liver"}, "cases": [case]}  # fmt: skip
    (root / "manifest.json").write_text(json.dumps({"datasets": [ds]}))
    return root, lab


def test_training_slices_are_the_predictors_view_slices(tmp_path: Path) -> None:
    root, lab = _volume(tmp_path)
    samples = list(text_data.iter_samples(root, datasets=["totalseg_ref"]))
    views = {m["view"] for m, _, _ in samples}
    assert views == {"axial", "coronal", "sagittal"}
    image = load(root / "totalseg_ref" / "ct.nii.gz")
    p = Predictor(_Echo(), progress=False)
    p.set_image(image)  # frame="view": the slices the text head is asked about
    axial = [(m, u, lb) for m, u, lb in samples if m["view"] == "axial"]
    assert len(axial) == 20
    for meta, unit, label in axial:
        z = meta["slice"]
        assert np.array_equal(unit, p.embedding(z)), z  # the very array the encoder sees
        assert np.array_equal(label, lab[z][::-1, ::-1])  # turned like the image, not stored
    # the organ (array: high x, low y) is on the view's left / bottom, as the app shows it
    _, unit, label = axial[4]
    rows, cols = np.nonzero(label)
    assert rows.min() > 20 and cols.max() < 18


def test_every_view_keeps_label_on_its_image(tmp_path: Path) -> None:
    root, _ = _volume(tmp_path)
    image = load(root / "totalseg_ref" / "ct.nii.gz")
    for meta, unit, label in text_data.iter_samples(root, datasets=["totalseg_ref"]):
        assert unit.shape == label.shape
        bright = unit > 0.99  # 300 HU is above the soft-tissue window
        assert np.array_equal(bright, label > 0), (meta["view"], meta["slice"])
        shown = view_image(image, meta["view"]).array[meta["slice"]]
        assert np.array_equal(shown > 200, label > 0)


def test_flips_mirror_axial_slices_and_labels_alike(tmp_path: Path) -> None:
    root, _ = _volume(tmp_path)
    plain = list(text_data.iter_samples(root, datasets=["totalseg_ref"]))
    flipped = list(text_data.iter_samples(root, datasets=["totalseg_ref"], flips=True))
    assert len(flipped) == len(plain) + 3 * 20  # three mirrors of every axial slice
    first = {(m["view"], m["slice"]): (u, lb) for m, u, lb in plain}
    for meta, unit, label in flipped:
        if "flip" not in meta:
            continue
        assert meta["view"] == "axial"
        u0, l0 = first[("axial", meta["slice"])]
        axes = text_data.FLIPS[meta["flip"]]
        assert np.array_equal(unit, np.flip(u0, axes)) and np.array_equal(label, np.flip(l0, axes))
