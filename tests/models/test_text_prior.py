"""The body-relative anatomical prior (medseg.models.text_prior): body boxes on small
synthetic slices, prior boxes in pixels under each flip, and the candidate choice with a
scripted box decoder, all exact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import ModelError
from medseg.io.image import Image
from medseg.models.base import Decoded
from medseg.models.text_prior import (
    PRIOR_FORMAT,
    AnatomyPrior,
    answer,
    body_box,
    body_mask,
    box_iou,
    load_prior,
    normalise_box,
    prior_mask,
    slice_flips,
    to_pixels,
)

H, W = 64, 96


def _body(level: float = 0.6, background: float = 0.0) -> np.ndarray:
    """A rectangular body (rows 20..49, cols 10..79) with a dark lung inside."""
    img = np.full((H, W), background, np.float32)
    img[20:50, 10:80] = level
    img[28:40, 20:35] = 0.0  # air inside the body: a hole, filled
    return img


def test_body_box_of_a_plain_slice() -> None:
    assert body_box(_body()) == (10.0, 20.0, 80.0, 50.0)
    mask = body_mask(_body())
    assert mask is not None and mask[30, 25]  # the lung is inside the body
    assert mask.sum() == 30 * 70 - 4  # the opening (a 3 x 3 cross) rounds the corners


def test_body_box_inside_a_field_of_view_circle() -> None:
    """A CT stored with flat grey air inside the reconstruction circle, black outside."""
    yy, xx = np.mgrid[:H, :W]
    img = np.where((yy - 32) ** 2 + (xx - 48) ** 2 < 46**2, 0.3, 0.0).astype(np.float32)
    img[20:50, 10:80] = 0.6
    assert body_box(img) == (10.0, 20.0, 80.0, 50.0)


def test_body_box_on_a_noisy_mr_background() -> None:
    rng = np.random.default_rng(0)
    img = _body(0.5, 0.06) + rng.uniform(-0.02, 0.02, (H, W)).astype(np.float32)
    assert body_box(img) == (10.0, 20.0, 80.0, 50.0)


def test_no_body() -> None:
    assert body_box(np.zeros((H, W), np.float32)) is None
    assert body_box(np.zeros((4, 4), np.float32)) is None
    tiny = np.zeros((H, W), np.float32)
    tiny[2:5, 2:5] = 1.0  # 9 pixels: under 5 % of the image
    assert body_box(tiny) is None


def test_box_conversions() -> None:
    body = (10.0, 20.0, 110.0, 70.0)
    assert normalise_box((20, 30, 40, 50), body) == (0.1, 0.2, 0.3, 0.6)
    px = to_pixels(np.array([[0.1, 0.2, 0.3, 0.6], [-0.5, 0.0, 2.0, 1.0]]), body, (60, 100))
    np.testing.assert_allclose(px, [[20, 30, 40, 50], [0, 20, 100, 60]])
    assert box_iou((0, 0, 4, 4), (2, 0, 6, 4)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 1, 1), (5, 5, 6, 6)) == 0.0


def _prior(boxes: list[list[float]], min_score: float = 0.0) -> AnatomyPrior:
    return AnatomyPrior({"format": PRIOR_FORMAT, "min_score": min_score,
                         "targets": {"spleen": {"slices": 3, "boxes": boxes}}})  # fmt: skip


def test_candidates_under_each_flip() -> None:
    prior = _prior([[0.1, 0.2, 0.3, 0.6]])
    body = (10.0, 20.0, 110.0, 70.0)
    assert prior.has("spleen") and not prior.has("liver")
    np.testing.assert_allclose(prior.candidates("spleen", body, (100, 120)), [[20, 30, 40, 50]])
    got = prior.candidates("spleen", body, (100, 120), (False, True), (False, True))
    np.testing.assert_allclose(
        got, [[20, 30, 40, 50], [20, 40, 40, 60], [80, 30, 100, 50], [80, 40, 100, 60]]
    )


def test_slice_flips_follow_the_direction_matrix() -> None:
    assert slice_flips(Image(np.zeros((8, 8), np.float32))) == ((False, True), (False, True))
    vol = np.zeros((3, 8, 8), np.float32)
    assert slice_flips(Image(vol)) == ((False,), (False,))  # LPS: rows A->P, cols R->L
    ras = np.diag([-1.0, -1.0, 1.0])
    assert slice_flips(Image(vol, direction=ras)) == ((True,), (True,))
    coronal_stack = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    assert slice_flips(Image(vol, direction=coronal_stack)) is None


class _BoxLite:
    """Scripted LiteMedSAM decoder: each box gives ``shrink`` pixels inside it (score 0.9),
    or nothing for a box whose left edge is at ``empty_x0``."""

    def __init__(self, shape: tuple[int, int], shrink: int = 0, empty_x0: float = -1) -> None:
        self.shape, self.shrink, self.empty_x0 = shape, shrink, empty_x0

    def decode(self, embedding, prompts):
        n = len(prompts.boxes)
        out = np.full((n, 1, *self.shape), -5.0, np.float32)
        for k, (x0, y0, x1, y1) in enumerate(prompts.boxes.astype(int)):
            if x0 == self.empty_x0:
                continue
            s = self.shrink * k
            out[k, 0, y0 + s : y1 - s, x0 + s : x1 - s] = 5.0
        return Decoded(out, np.full((n, 1), 0.9, np.float32))


def test_prior_mask_keeps_the_candidate_whose_mask_fills_its_box() -> None:
    boxes = np.array([[10.0, 10.0, 30.0, 30.0], [40.0, 10.0, 60.0, 30.0], [0, 0, 1, 1]])
    choice = prior_mask(_BoxLite((H, W), shrink=2), None, boxes, 0.0)
    assert choice is not None and choice.box == (10.0, 10.0, 30.0, 30.0)
    assert choice.score == pytest.approx(0.9)
    expected = np.zeros((H, W), bool)
    expected[10:30, 10:30] = True
    np.testing.assert_array_equal(choice.logits > 0, expected)
    # the second candidate's mask is shrunk by 2 pixels a side: IoU 256/400
    second = prior_mask(_BoxLite((H, W), shrink=2, empty_x0=10), None, boxes, 0.0)
    assert second is not None and second.score == pytest.approx(0.9 * 256 / 400)
    assert prior_mask(_BoxLite((H, W), shrink=2, empty_x0=10), None, boxes, 0.7) is None
    assert prior_mask(_BoxLite((H, W)), None, np.array([[0.0, 0.0, 1.0, 9.0]]), 0.0) is None


def test_answer_maps_the_prior_into_the_body() -> None:
    prior = _prior([[0.5, 0.0, 1.0, 0.5]])  # the body's top right quarter
    img2d = Image(_body())
    got = answer(prior, img2d, _body(), _BoxLite((H, W)), None, "spleen", sided=True)
    assert got is not None and got.box == (45.0, 20.0, 80.0, 35.0)
    assert answer(prior, img2d, _body(), _BoxLite((H, W)), None, "liver", sided=False) is None
    assert answer(None, img2d, _body(), _BoxLite((H, W)), None, "spleen", sided=False) is None
    empty = np.zeros((H, W), np.float32)
    assert answer(prior, img2d, empty, _BoxLite((H, W)), None, "spleen", sided=False) is None


def test_load_prior_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ModelError, match="not a medseg text prior"):
        load_prior(bad)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ModelError, match="cannot read the text prior"):
        load_prior(broken)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"format": PRIOR_FORMAT, "targets": {}}))
    assert load_prior(good).targets == {}
