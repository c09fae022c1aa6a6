"""Text prompts routed to a loaded ``medseg auto`` model's classes
(:mod:`medseg.inference.text_auto`): exact masks from a scripted automatic model on small
synthetic images; phrases it has no class for still go to the text head."""

from __future__ import annotations

import numpy as np
import pytest

from medseg import Predictor
from medseg.automatic.segmenter import AutoSegmenter
from medseg.errors import PromptError
from medseg.inference.text_auto import class_values
from medseg.io.image import Image, LabelMap
from medseg.models.base import Decoded, PromptableModel

H, W = 12, 16
LABELS = np.zeros((H, W), np.uint8)
LABELS[2:5, 2:6] = 1  # liver
LABELS[6:9, 1:4] = 2  # kidney_right (image left)
LABELS[6:9, 11:14] = 3  # kidney_left (image right)
LABELS[1:3, 12:15] = 4  # disk (not a vocabulary target)
NAMES = {1: "liver", 2: "kidney_right", 3: "kidney_left", 4: "disk", 5: "spleen"}


class _ScriptedAuto(AutoSegmenter):
    """An automatic model whose label map is given (no folder, no network)."""

    def __init__(self, labels: np.ndarray, names: dict[int, str]) -> None:
        self.labels, self.label_names = labels, dict(names)
        self.default_label = min(names)
        self.calls = 0

    @property
    def name(self) -> str:
        return "scripted"

    def segment(self, image: Image) -> LabelMap:
        self.calls += 1
        arr = self.labels if image.ndim == 2 else np.stack([self.labels] * image.shape[0])
        return LabelMap(arr, label_names=self.label_names)


class _Boxes(PromptableModel):
    """A box gives its own rectangle (no text head: text needs an automatic class)."""

    name = "boxes"
    prompt_kinds = frozenset({"box", "points", "mask"})

    def encode(self, image):
        return np.asarray(image).shape[:2]

    def decode(self, embedding, prompts, *, multimask=False):
        out = np.full((1, 1, *embedding), -6.0, np.float32)
        if prompts.boxes is not None:
            x0, y0, x1, y1 = (int(v) for v in prompts.boxes[0])
            out[0, 0, y0:y1, x0:x1] = 6.0
        elif prompts.points is not None:
            for (x, y), lab in zip(prompts.points[0], prompts.point_labels[0], strict=True):
                out[0, 0, int(y), int(x)] = 6.0 if lab else -6.0
            if prompts.mask_input is not None:
                out[0, 0][prompts.mask_input[0] > 0] = 6.0
        return Decoded(out, np.ones((1, 1), np.float32))


@pytest.fixture
def predictor() -> Predictor:
    p = Predictor(_Boxes(), auto=_ScriptedAuto(LABELS, NAMES), progress=False)
    p.set_image(Image(np.zeros((H, W), np.float32)))
    return p


def test_class_values_match_names_synonyms_and_sides() -> None:
    assert class_values(NAMES, "liver") == [1]
    assert class_values(NAMES, "Segment the LIVER") == [1]
    assert class_values(NAMES, "left kidney") == [3]
    assert class_values(NAMES, "kidney left") == [3]
    assert class_values(NAMES, "kidneys") == [2, 3]  # the two-sided base: both classes
    assert class_values(NAMES, "disk") == [4]  # not in the vocabulary: by its words
    assert class_values(NAMES, "pancreas") == []
    assert class_values(NAMES, "flux capacitor") == []
    assert class_values({1: "left kidney"}, "kidney_left") == [1]


def test_a_phrase_naming_a_class_returns_its_automatic_mask(predictor: Predictor) -> None:
    r = predictor.predict(text="liver")
    np.testing.assert_array_equal(r.mask, LABELS == 1)
    assert r.found == (True,) and float(r.score) == 1.0
    assert r.info["text"] == [{"text": "liver", "route": "auto", "label": [1],
                               "label_name": ["liver"], "found": True}]  # fmt: skip
    assert r.info["model"] == "scripted+boxes"
    r = predictor.predict(texts=["right kidney", "kidney", "disk"])
    assert r.mask.shape == (3, H, W) and r.found == (True, True, True)
    np.testing.assert_array_equal(r.mask[0], LABELS == 2)
    np.testing.assert_array_equal(r.mask[1], np.isin(LABELS, [2, 3]))
    np.testing.assert_array_equal(r.mask[2], LABELS == 4)


def test_a_class_without_pixels_is_not_found(predictor: Predictor) -> None:
    r = predictor.predict(text="spleen")
    assert r.found == (False,) and not r.mask.any() and float(r.score) == 0.0


def test_other_phrases_still_need_the_text_head(predictor: Predictor) -> None:
    with pytest.raises(PromptError, match="LiteMedSAM's image encoder"):
        predictor.predict(text="pancreas")
    with pytest.raises(PromptError, match="LiteMedSAM's image encoder"):
        predictor.predict(texts=["liver", "pancreas"])
    with pytest.raises(PromptError, match="slice_index needs a 3D image"):
        predictor.predict(text="liver", slice_index=0)


@pytest.mark.slow  # the unknown-phrase error loads the sentence encoder for nearest names
def test_an_unknown_phrase_still_raises(predictor: Predictor) -> None:
    with pytest.raises(PromptError, match="unknown target 'flux capacitor'"):
        predictor.predict(text="flux capacitor")


def test_clicks_correct_a_routed_mask(predictor: Predictor) -> None:
    r = predictor.predict(text="liver", points=[(10, 10)], point_labels=[1])
    expected = LABELS == 1
    expected[10, 10] = True
    np.testing.assert_array_equal(r.mask, expected)
    assert r.found == (True,)


def test_volumes_route_whole_and_per_slice() -> None:
    p = Predictor(_Boxes(), auto=_ScriptedAuto(LABELS, NAMES), progress=False)
    p.set_image(Image(np.zeros((3, H, W), np.float32)))
    r = p.predict(text="left kidney")
    np.testing.assert_array_equal(r.mask, np.stack([LABELS == 3] * 3))
    assert r.slice_ranges == ((0, 2),) and r.found == (True,)
    r = p.predict(texts=["left kidney", "spleen"])
    assert r.slice_ranges == ((0, 2), (0, -1)) and r.found == (True, False)
    r = p.predict(text="liver", slice_index=1, propagate=False)
    np.testing.assert_array_equal(r.mask, LABELS == 1)
    assert r.info["slice_index"] == 1
    with pytest.raises(PromptError, match="propagate=False needs slice_index"):
        p.predict(text="liver", propagate=False)


def test_without_an_automatic_model_nothing_routes() -> None:
    from medseg.inference.text_auto import routes

    p = Predictor(_Boxes(), progress=False)
    p.set_image(Image(np.zeros((H, W), np.float32)))
    assert routes(p, ["liver"]) is None
    with pytest.raises(PromptError, match="LiteMedSAM's image encoder"):
        p.predict(text="liver")
