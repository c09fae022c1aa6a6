"""Text prompts in the Predictor (medseg.inference.text): the side rule, not-found rule,
argument checks and the 3D search + propagation, with a scripted text head so the expected
masks are exact; the trained head on real data is in tests/bench/test_text_bench.py."""

from __future__ import annotations

import numpy as np
import pytest

from medseg import Predictor
from medseg.errors import PromptError
from medseg.inference.text import patient_left_is_high_x, side_cut
from medseg.io.image import Image
from medseg.models.base import Decoded

H, W = 64, 96
YY, XX = np.mgrid[:H, :W]
# Two "kidneys" either side of the body's midline (column 47.5)
BLOB_LOW_X = (YY - 32) ** 2 + (XX - 24) ** 2 < 64
BLOB_HIGH_X = (YY - 32) ** 2 + (XX - 72) ** 2 < 64
BODY = np.where((YY - 32) ** 2 / 30**2 + (XX - 47.5) ** 2 / 46**2 < 1, 0.8, 0.0)


def test_side_cut_keeps_components_on_the_asked_side() -> None:
    both = BLOB_LOW_X | BLOB_HIGH_X
    # radiological display: the patient's left is on the image's right (high x)
    np.testing.assert_array_equal(side_cut(both, BODY, "left", True), BLOB_HIGH_X)
    np.testing.assert_array_equal(side_cut(both, BODY, "right", True), BLOB_LOW_X)
    np.testing.assert_array_equal(side_cut(both, BODY, "left", False), BLOB_LOW_X)
    # a single component is judged against the body's midline, not the mask's own centre
    np.testing.assert_array_equal(side_cut(BLOB_LOW_X, BODY, "right", True), BLOB_LOW_X)
    assert not side_cut(BLOB_LOW_X, BODY, "left", True).any()
    assert not side_cut(np.zeros((H, W), bool), BODY, "left").any()
    with pytest.raises(PromptError, match="left' or 'right"):
        side_cut(both, BODY, "up")


def test_patient_left_follows_the_direction_matrix() -> None:
    arr = np.zeros((4, 5, 6), np.float32)
    assert patient_left_is_high_x(Image(arr))  # identity = LPS: +x is the patient's left
    flipped = np.diag([-1.0, 1.0, 1.0])
    assert not patient_left_is_high_x(Image(arr, direction=flipped))
    sagittal = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    with pytest.raises(PromptError, match="left-right"):
        patient_left_is_high_x(Image(arr, direction=sagittal))


class ScriptedHead:
    """Stands in for TextDecoder: presence and mask per phrase, optionally per slice."""

    threshold = 0.5

    def __init__(self, lite, masks: dict, presence: dict) -> None:
        self.lite, self.masks, self.presence, self.calls = lite, masks, presence, []

    def vector(self, phrases):
        v = np.zeros(384, np.float32)
        v[0] = {"kidney": 1, "liver": 2, "spleen": 3}[phrases[0]]
        return v

    def decode(self, embedding, vectors):
        self.calls.append(embedding)
        names = {1: "kidney", 2: "liver", 3: "spleen"}
        out = [np.where(self.masks[names[int(v[0])]], 8.0, -8.0) for v in vectors]
        pres = [[self.presence[names[int(v[0])]]] for v in vectors]
        return Decoded(logits=np.stack(out)[:, None].astype(np.float32),
                       scores=np.asarray(pres, np.float32))  # fmt: skip


@pytest.fixture
def text_predictor(litemedsam) -> Predictor:
    p = Predictor(litemedsam, progress=False)
    p.set_image(Image((BODY * 200).astype(np.float32), modality="CT"))
    return p


def _script(p: Predictor, masks: dict, presence: dict) -> ScriptedHead:
    head = ScriptedHead(p.model, masks, presence)
    p._text_decoder = head
    return head


def test_text_2d_found_side_and_absent(text_predictor: Predictor) -> None:
    p = text_predictor
    both = BLOB_LOW_X | BLOB_HIGH_X
    _script(p, {"kidney": both, "liver": BLOB_LOW_X, "spleen": BLOB_HIGH_X},
            {"kidney": 0.9, "liver": 0.2, "spleen": 0.7})  # fmt: skip
    r = p.predict(text="left kidney")
    np.testing.assert_array_equal(r.mask, BLOB_HIGH_X)
    assert r.found == (True,) and r.info["text"][0]["target"] == "left kidney"
    assert r.info["text"][0]["side"] == "left"
    np.testing.assert_array_equal(p.predict(text="kidneys").mask, both)
    r = p.predict(texts=["liver", "spleen", "right kidney"])
    assert r.mask.shape == (3, H, W) and r.found == (False, True, True)
    assert not r.mask[0].any()  # presence 0.2 < 0.5: reported as not found, not guessed
    np.testing.assert_array_equal(r.mask[1], BLOB_HIGH_X)
    np.testing.assert_array_equal(r.labels, np.where(BLOB_HIGH_X, 2, np.where(BLOB_LOW_X, 3, 0)))
    np.testing.assert_allclose(r.scores, [0.2, 0.7, 0.9])


def test_text_argument_errors(text_predictor: Predictor) -> None:
    p = text_predictor
    _script(p, {"kidney": BLOB_LOW_X}, {"kidney": 0.9})
    with pytest.raises(PromptError, match="unknown target 'flux capacitor'"):
        p.predict(text="flux capacitor")
    with pytest.raises(PromptError, match="empty text"):
        p.predict(text="  ")
    with pytest.raises(PromptError, match=r"take clicks \(points=\) only, not box"):
        p.predict(text="kidney", box=(1, 1, 9, 9))
    with pytest.raises(PromptError, match="clicks correct one text target"):
        p.predict(texts=["kidney", "liver"], points=[(24, 32)])
    with pytest.raises(PromptError, match="not both"):
        p.predict(text="kidney", texts=["liver"])
    with pytest.raises(PromptError, match="non-empty list"):
        p.predict(texts="kidney")
    with pytest.raises(PromptError, match="slice_index needs a 3D image"):
        p.predict(text="kidney", slice_index=0)
    with pytest.raises(PromptError, match="not in this US image"):
        p.set_image(Image(BODY.astype(np.float32), modality="US"))
        p.predict(text="kidney")


def test_text_needs_litemedsam_encoder() -> None:
    from medseg.inference.text import lite_parts

    class Other:
        name = "medseg-interactive"

    with pytest.raises(PromptError, match=r"LiteMedSAM's image encoder.*medseg-interactive"):
        lite_parts(Other(), None)


def test_text_volume_search_then_box_propagation(text_predictor: Predictor) -> None:
    p = text_predictor
    vol = np.stack([BODY * 200] * 10).astype(np.float32)
    p.set_image(Image(vol, modality="CT"))
    head = _script(p, {"kidney": BLOB_LOW_X | BLOB_HIGH_X}, {"kidney": 0.9})
    r = p.predict(text="right kidney", slice_index=4, propagate=False)
    assert r.mask.shape == (H, W) and r.found == (True,) and r.info["slice_index"] == 4
    np.testing.assert_array_equal(r.mask, BLOB_LOW_X)
    head.calls.clear()
    r = p.predict(text="right kidney")
    assert r.mask.shape == (10, H, W) and r.found == (True,)
    assert len(head.calls) == 8  # slices 1..8 searched (central 80 %), each decoded once
    start = r.info["start_slice"][0]
    assert r.mask[start].any() and not r.mask[start][:, W // 2 :].any()
    assert len(r.slice_ranges) == 1 and r.slice_ranges[0][0] <= start <= r.slice_ranges[0][1]
    head.presence["kidney"] = 0.1
    r = p.predict(texts=["kidney"])
    assert r.mask.shape == (1, 10, H, W) and r.found == (False,) and not r.mask.any()


def test_text_plus_clicks_feeds_the_text_mask_to_the_click_prompt(
    text_predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = text_predictor
    _script(p, {"kidney": BLOB_LOW_X | BLOB_HIGH_X}, {"kidney": 0.9})
    seen = []
    decode = p.model.decode

    def spy(embedding, prompts, **kw):
        seen.append(prompts)
        return decode(embedding, prompts, **kw)

    monkeypatch.setattr(p.model, "decode", spy)
    r = p.predict(text="right kidney", points=[(72, 32)], point_labels=[1])
    (prompts,) = seen
    np.testing.assert_array_equal(prompts.mask_input[0] > 0, BLOB_LOW_X)  # the side-cut mask
    np.testing.assert_array_equal(prompts.points, [[[72.0, 32.0]]])
    assert r.found == (True,) and r.mask.any()
    assert r.info["text"][0]["target"] == "right kidney"
    # a target the head did not find: the clicks alone, not its empty mask, make the object
    _script(p, {"kidney": BLOB_LOW_X}, {"kidney": 0.1})
    r = p.predict(text="kidney", points=[(24, 32)])
    assert seen[-1].mask_input is None
    np.testing.assert_array_equal(seen[-1].points, [[[24.0, 32.0]]])
    assert r.found == (bool(r.mask.any()),)


def test_colour_rule_reports_targets_of_the_other_kind_of_image_as_not_found() -> None:
    from medseg.inference.text import is_colour, plausible
    from medseg.prompts.text import parse_target

    gray_rgb = np.repeat((BODY * 200).astype(np.uint8)[..., None], 3, axis=-1)
    colour = gray_rgb.copy()
    colour[..., 0] = 255 - colour[..., 0]
    assert not is_colour(Image(gray_rgb, channels=True))  # grayscale saved as RGB
    assert is_colour(Image(colour, channels=True))
    assert not is_colour(Image((BODY * 200).astype(np.float32)))
    polyp, kidney = parse_target("polyp"), parse_target("kidney")
    assert plausible(polyp, True) and not plausible(polyp, False)
    assert plausible(kidney, False) and not plausible(kidney, True)


def test_polyp_on_a_grayscale_image_is_not_found_whatever_the_head_says(
    text_predictor: Predictor,
) -> None:
    text_predictor.set_image(Image((BODY * 200).astype(np.uint8)))  # a PNG: no modality
    head = _script(text_predictor, {"kidney": BLOB_LOW_X}, {"kidney": 0.9})
    head.vector = lambda phrases: np.full(384, 1.0, np.float32)  # every phrase -> "kidney"
    r = text_predictor.predict(text="polyp")
    assert r.found == (False,) and not r.mask.any()
    assert r.info["text"][0]["presence"] == pytest.approx(0.9)  # the head's answer is kept
