"""The anatomical prior in ``Predictor.predict(text=...)``: where the text head finds
nothing on a grayscale slice, the prior's box (body-relative, tried under each flip on a 2D
image) prompts the box decoder; a scripted head and a scripted decoder make every mask
exact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg import Predictor
from medseg.io.image import Image
from medseg.models.base import Decoded, PromptableModel
from medseg.models.text_prior import PRIOR_FORMAT

H, W = 64, 96
BODY = np.zeros((H, W), bool)
BODY[20:50, 10:80] = True  # body box (10, 20, 80, 50)
ORGAN = np.zeros((H, W), bool)
ORGAN[35:50, 10:45] = True  # the body's bottom-left quarter


def _hu(organ: np.ndarray = ORGAN) -> np.ndarray:
    """A CT slice in HU: air, soft tissue with texture (+-20 HU), a bright organ."""
    texture = np.random.default_rng(0).uniform(-20, 20, (H, W))
    return np.where(organ, 230.0, np.where(BODY, 40.0 + texture, -1000.0)).astype(np.float32)


class _Organs(PromptableModel):
    """A box gives the organ pixels (> 150 HU, unit > 0.85) inside it, score 0.9; clicks
    give ``mask_input`` plus the clicked pixels."""

    name = "organs"
    prompt_kinds = frozenset({"box", "points", "mask"})

    def encode(self, image):
        return np.asarray(image) > 0.85

    def decode(self, embedding, prompts, *, multimask=False):
        if prompts.boxes is None:  # clicks: mask_input plus the clicked pixels
            out = np.full((1, 1, *embedding.shape), -6.0, np.float32)
            if prompts.mask_input is not None:
                out[0, 0][prompts.mask_input[0] > 0] = 6.0
            for (x, y), lab in zip(prompts.points[0], prompts.point_labels[0], strict=True):
                out[0, 0, int(y), int(x)] = 6.0 if lab else -6.0
            return Decoded(out, np.ones((1, 1), np.float32))
        n = len(prompts.boxes)
        out = np.full((n, 1, *embedding.shape), -6.0, np.float32)
        for k, (x0, y0, x1, y1) in enumerate(prompts.boxes.astype(int)):
            inside = np.zeros(embedding.shape, bool)
            inside[y0:y1, x0:x1] = True
            out[k, 0][embedding & inside] = 6.0
        return Decoded(out, np.full((n, 1), 0.9, np.float32))

    def text_backbone(self, embedding):
        return self, embedding


class _Absent:
    """A text head that never finds anything (presence 0.1)."""

    threshold = 0.5

    def __init__(self, lite) -> None:
        self.lite = lite

    def vector(self, phrases):
        return np.zeros(384, np.float32)

    def decode(self, embedding, vectors):
        n = len(vectors)
        return Decoded(np.full((n, 1, *embedding.shape), -8.0, np.float32),
                       np.full((n, 1), 0.1, np.float32))  # fmt: skip


@pytest.fixture
def prior_file(tmp_path: Path) -> Path:
    doc = {"format": PRIOR_FORMAT, "min_score": 0.5, "sides": {"kidney": ["kidney_left"]},
           "targets": {"spleen": {"slices": 4, "boxes": [[0.5, 0.0, 1.0, 0.5]]},
                       "kidney_left": {"slices": 4, "boxes": [[0.5, 0.0, 1.0, 0.5]]}}}  # fmt: skip
    path = tmp_path / "prior.json"
    path.write_text(json.dumps(doc))
    return path


def _predictor(image: Image, prior: Path | bool) -> Predictor:
    p = Predictor(_Organs(), progress=False)
    p.set_image(image)
    p._text_decoder = _Absent(p.model)
    p.text_prior = prior
    return p


def test_the_prior_finds_what_the_head_does_not(prior_file: Path) -> None:
    p = _predictor(Image(_hu(), modality="CT"), prior_file)
    r = p.predict(text="spleen")  # its box, flipped up-down and left-right, holds the organ
    np.testing.assert_array_equal(r.mask, ORGAN)
    assert r.found == (True,) and float(r.score) == pytest.approx(0.9)
    assert r.info["text"][0]["presence"] == pytest.approx(0.9)
    assert p.predict(text="liver").found == (False,)  # no prior for it: not found


def test_the_prior_is_not_mirrored_for_a_side(prior_file: Path) -> None:
    p = _predictor(Image(_hu(), modality="CT"), prior_file)
    # the left kidney's box is on the image's right: never tried left-right mirrored
    assert p.predict(text="left kidney").found == (False,)
    shifted = np.zeros((H, W), bool)
    shifted[35:50, 45:80] = True
    p.set_image(Image(_hu(shifted), modality="CT"))
    r = p.predict(text="left kidney")  # flipped up-down only: found on the patient's left
    np.testing.assert_array_equal(r.mask, shifted)
    assert r.found == (True,)
    np.testing.assert_array_equal(p.predict(text="kidney").mask, shifted)  # the sides' union


def test_no_prior_when_off_weak_or_colour(prior_file: Path, tmp_path: Path) -> None:
    assert _predictor(Image(_hu(), modality="CT"), False).predict(text="spleen").found == (False,)
    strict = json.loads(prior_file.read_text())
    strict["min_score"] = 0.95  # above the decoder's 0.9
    path = tmp_path / "strict.json"
    path.write_text(json.dumps(strict))
    assert _predictor(Image(_hu(), modality="CT"), path).predict(text="spleen").found == (False,)
    rgb = np.stack([np.where(ORGAN, 250, np.where(BODY, 120, 0))] * 3, -1).astype(np.uint8)
    rgb[..., 0] = np.where(BODY, 200, 0)  # a colour photograph: the prior is not asked
    assert _predictor(Image(rgb, channels=True), prior_file).predict(text="spleen").found == (
        False,
    )


def test_volume_slices_use_the_direction_matrix(prior_file: Path) -> None:
    top_right = np.zeros((H, W), bool)
    top_right[20:35, 45:80] = True  # where the prior's box is in the radiological frame
    vol = np.stack([_hu(top_right), _hu(ORGAN)])
    p = _predictor(Image(vol, modality="CT"), prior_file)
    r = p.predict(text="spleen", slice_index=0, propagate=False)
    np.testing.assert_array_equal(r.mask, top_right)
    # the direction is known: slice 1's organ (where only a flipped box reaches) is not found
    assert p.predict(text="spleen", slice_index=1, propagate=False).found == (False,)


def test_clicks_drop_a_prior_guess_they_contradict(prior_file: Path) -> None:
    p = _predictor(Image(_hu(), modality="CT"), prior_file)
    r = p.predict(text="spleen", points=[(20, 40)], point_labels=[1])  # inside: kept
    np.testing.assert_array_equal(r.mask, ORGAN)
    r = p.predict(text="spleen", points=[(70, 25)], point_labels=[1])  # outside: dropped
    expected = np.zeros((H, W), bool)
    expected[25, 70] = True
    np.testing.assert_array_equal(r.mask, expected)
    assert r.found == (True,)
    r = p.predict(text="spleen", points=[(70, 25), (20, 40)], point_labels=[1, 0])
    expected = ORGAN.copy()
    expected[25, 70], expected[40, 20] = True, False  # a negative click: the guess is kept
    np.testing.assert_array_equal(r.mask, expected)


def test_the_prior_is_off_unless_asked() -> None:
    p = Predictor(_Organs(), progress=False)
    p.set_image(Image(_hu(), modality="CT"))
    p._text_decoder = _Absent(p.model)
    assert p.predict(text="spleen").found == (False,)  # no text_prior attribute: off
    p.text_prior = None
    assert p.predict(text="spleen").found == (False,)
    p.text_prior = True  # the bundled prior (its boxes need not fit this toy body)
    r = p.predict(text="spleen")
    assert r.info["text"][0]["prior"] == r.found[0]
