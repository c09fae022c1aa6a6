"""medseg-interactive with the committed weights: the object input, end to end through the
Predictor, bad prompts, box then refine (the default model) and TTA (the geometry and parsing
under it: test_interactive.py)."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import ModelError, PromptError
from medseg.models.interactive import ObjectPrompts, scribble_masks
from medseg.models.interactive_net import CropWindow, paste_back
from medseg.prompts.simulation import next_click


@pytest.fixture(scope="module")
def model():
    from medseg.models import create_model

    return create_model("medseg-interactive", num_threads=1)


def _disk_image(size: int = 96, centre=(40, 50), radius: int = 16):
    yy, xx = np.mgrid[0:size, 0:size]
    gt = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2
    image = np.where(gt, 200, 40).astype(np.uint8)
    return image, gt


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


# ---- the object input ------------------------------------------------------------------
def test_object_input_puts_clicks_at_the_right_pixels(model):
    emb = model.encode(np.zeros((128, 128), np.float32))
    obj = ObjectPrompts(box=np.array([0.0, 0.0, 127.0, 127.0]), points=np.array([[10.0, 20.0]]),
                        labels=np.array([1]))  # fmt: skip
    x, window = model.object_input(emb, obj)
    assert window == CropWindow(0, 0, 128)  # 1.5 x 128 capped at the image: no resampling
    assert x[4, 20, 10] == 1 and x[4].sum() == 29 and x[5].sum() == 0
    assert x[3].min() == 1  # the box covers the whole window


# ---- committed weights, end to end ------------------------------------------------------
def test_predictor_box_clicks_mask_input(model):
    from medseg.inference.predictor import Predictor

    image, gt = _disk_image()
    p = Predictor(model)
    p.set_image(image)
    r = p.predict(box=(33, 23, 67, 57))
    assert r.mask.shape == (96, 96) and r.mask.dtype == bool
    assert _dice(r.mask, gt) > 0.85  # committed weights: 0.93
    r2 = p.predict(points=[(50, 40)], point_labels=[1])
    assert _dice(r2.mask, gt) > 0.3  # one click on an unknown-size object: 0.46
    click = next_click(r2.mask, gt)
    assert click is not None and click.label == 1  # the object is under-segmented
    pts, labels = [(50, 40), click.point], [1, click.label]
    r3 = p.predict(points=pts, point_labels=labels, mask_input=r2)
    assert r3.mask.shape == (96, 96) and _dice(r3.mask, gt) > _dice(r2.mask, gt)
    assert p.predict(mask_input=gt).mask.shape == (96, 96)


def test_rgb_and_scribbles_with_the_model(model):
    image, gt = _disk_image(80, (40, 40), 12)
    rgb = np.repeat(image[..., None], 3, axis=-1)
    emb = model.encode(rgb / 255.0)
    scr = scribble_masks([([(34, 40), (46, 40)], 1), ([(5, 5), (5, 70)], 0)], (80, 80))
    logits, scores = model.predict_objects(emb, [ObjectPrompts(scribbles=scr)])
    assert logits.shape == (1, 80, 80) and scores.shape == (1,)
    assert _dice(logits[0] > 0, gt) > 0.7


def test_predictor_bad_prompts(model):
    from medseg.inference.predictor import Predictor

    image, _ = _disk_image()
    p = Predictor(model)
    p.set_image(image)
    with pytest.raises(PromptError):
        p.predict()
    with pytest.raises(PromptError, match="outside"):
        p.predict(points=[(200, 10)])
    with pytest.raises(PromptError, match="multimask"):
        p.predict(box=(10, 10, 50, 50), multimask=True)


def test_predictor_scribbles_2d_and_refinement(model):
    from medseg.inference.predictor import Predictor

    image, gt = _disk_image(80, (40, 40), 12)
    p = Predictor(model)
    p.set_image(image)
    lines = [{"points": [(34, 40), (46, 40)], "label": 1}, ([(5, 5), (5, 70)], 0)]
    r = p.predict(scribbles=lines)
    assert r.mask.shape == (80, 80) and _dice(r.mask, gt) > 0.7
    pair = scribble_masks(lines, (80, 80))
    same = p.predict(scribbles={"positive": pair[0], "negative": pair[1]})
    np.testing.assert_array_equal(same.mask, r.mask)
    refined = p.predict(scribbles=pair, points=[(40, 40)], mask_input=r)
    assert refined.mask.shape == (80, 80) and _dice(refined.mask, gt) > 0.7


def test_predictor_scribbles_bad_input(model):
    from medseg.inference.predictor import Predictor

    image, _ = _disk_image(80, (40, 40), 12)
    p = Predictor(model)
    p.set_image(image)
    with pytest.raises(PromptError, match="outside the image"):
        p.predict(scribbles=[([(10, 10), (90, 10)], 1)])
    with pytest.raises(PromptError, match="empty scribbles"):
        p.predict(scribbles=np.zeros((2, 80, 80), bool))
    with pytest.raises(PromptError, match=r"must be \(2, 80, 80\)"):
        p.predict(scribbles=np.zeros((2, 40, 40), bool))
    with pytest.raises(PromptError, match="one object"):
        p.predict(boxes=[(1, 1, 9, 9), (20, 20, 30, 30)], scribbles=[([(5, 5)], 1)])


def test_predictor_scribble_on_a_volume_slice_propagates(model):
    from medseg.inference.predictor import Predictor

    zz, yy, xx = np.mgrid[0:9, 0:64, 0:64]
    gt = ((zz - 4) / 4.5) ** 2 + ((yy - 32) / 12) ** 2 + ((xx - 32) / 12) ** 2 <= 1
    volume = np.where(gt, 200, 40).astype(np.uint8)
    p = Predictor(model, progress=False)
    p.set_image(volume)
    r = p.predict(scribbles=[([(26, 32), (38, 32)], 1)], slice_index=4)
    assert r.mask.shape == volume.shape
    assert r.mask[4].sum() > 0 and r.mask[3].sum() > 0 and r.mask[5].sum() > 0
    assert 2.0 * (r.mask & gt).sum() / (r.mask.sum() + gt.sum()) > 0.6


def test_litemedsam_rejects_scribbles(litemedsam):
    from medseg.inference.predictor import Predictor

    p = Predictor(litemedsam)
    p.set_image(np.zeros((32, 32), np.uint8))
    with pytest.raises(PromptError, match="does not accept scribbles"):
        p.predict(box=(2, 2, 20, 20), scribbles=[([(5, 5)], 1)])


# ---- box then refine ---------------------------------------------------------------------
class _Const:
    """A fake model whose logits are a constant, to see which model decoded."""

    name = "const"
    prompt_kinds = frozenset({"box", "points", "mask"})

    def __init__(self, value: float):
        self.value = value
        self.encoded = 0

    def encode(self, image):
        self.encoded += 1
        return np.asarray(image).shape[:2]

    def decode(self, emb, prompts, multimask=False):
        from medseg.models.base import Decoded

        n = prompts.num_objects
        return Decoded(np.full((n, 1, *emb), self.value, np.float32), np.ones((n, 1), np.float32))

    def config_dict(self):
        return {"name": self.name}


def test_box_then_refine_routes_box_only_to_the_first_model():
    from medseg.models.interactive_auto import BoxThenRefine
    from medseg.prompts.types import PromptSet

    first, refine = _Const(1.0), _Const(-1.0)
    m = BoxThenRefine(first, refine)
    emb = m.encode(np.zeros((4, 5)))
    box = np.array([[0.0, 0.0, 3.0, 3.0]])
    assert m.decode(emb, PromptSet(boxes=box)).logits[0, 0, 0, 0] == 1.0
    assert (first.encoded, refine.encoded) == (1, 0)  # a box alone never runs the 2nd encoder
    assert emb.nbytes == 4 * 5 * 8  # the image kept for it (float64)
    pts = PromptSet(boxes=box, points=np.array([[[1.0, 1.0]]]), point_labels=np.array([[1]]))
    assert m.decode(emb, pts).logits[0, 0, 0, 0] == -1.0
    assert m.decode(emb, pts).logits[0, 0, 0, 0] == -1.0
    assert (first.encoded, refine.encoded) == (1, 1)  # encoded once, on first need
    masked = PromptSet(boxes=box, mask_input=np.zeros((1, 4, 5), np.float32))
    assert m.decode(emb, masked).logits.shape == (1, 1, 4, 5)
    assert m.decode(emb, masked).logits[0, 0, 0, 0] == -1.0
    with pytest.raises(PromptError):
        m.decode(emb, PromptSet(boxes=box), multimask=True)


def test_default_is_box_then_refine_and_auto_is_deprecated():
    import pytest

    from medseg.models import DEFAULT_MODEL, create_model, list_models
    from medseg.models.interactive import InteractiveModel
    from medseg.models.interactive_auto import BoxThenRefine

    assert DEFAULT_MODEL == "litemedsam+interactive"
    assert {"default", "medseg-interactive", "litemedsam+interactive"} <= set(list_models())
    m = create_model("default", interactive={"enlarge": 2.0})
    assert isinstance(m, BoxThenRefine) and m.refine.config.enlarge == 2.0
    both = create_model("default", num_threads=1, litemedsam={"num_threads": 2})
    assert (both.first.config.num_threads, both.refine.config.num_threads) == (2, 1)
    with pytest.raises(ModelError, match=r"unknown option\(s\) \['enlarge'\]"):
        create_model("default", enlarge=2.0)
    with pytest.warns(DeprecationWarning, match="medseg-interactive"):
        old = create_model("auto")
    assert isinstance(old, InteractiveModel)  # what "auto" always named


def test_tta_averages_the_mirrored_prediction(monkeypatch):
    """With a fake network ``f(x) = x[:, :1] + ramp`` (ramp 0..S-1 along x), the mirrored
    pass un-mirrored is ``x[:, :1] + (S-1-ramp)``, so TTA gives ``x[:, :1] + (S-1)/2``."""
    import torch

    from medseg.models import create_model

    tta = create_model("medseg-interactive", tta=True, num_threads=1)
    seen = []

    def fake(x):
        seen.append(x.shape[0])
        ramp = torch.arange(x.shape[-1], dtype=x.dtype)
        return x[:, :1] + ramp

    image, _ = _disk_image(80, (40, 44), 12)
    emb = tta.encode(image / 255.0)
    obj = ObjectPrompts(box=np.array([30.0, 26.0, 58.0, 54.0]))
    x, window = tta.object_input(emb, obj)
    monkeypatch.setattr(tta, "net", fake)
    logits, _ = tta.predict_objects(emb, [obj])
    assert seen == [2]  # one batch: the input and its mirror
    s = tta.size
    expected = paste_back(x[0] + (s - 1) / 2, window, emb.shape, -20.0)
    np.testing.assert_allclose(logits[0], expected, rtol=1e-5, atol=1e-4)
