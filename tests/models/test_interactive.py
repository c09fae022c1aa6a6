"""medseg-interactive: crop/paste-back geometry, input encoding, network shape, the model with
the committed weights end to end, and bad prompts."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import ModelError, PromptError
from medseg.models.interactive import (
    InteractiveConfig,
    ObjectPrompts,
    object_window,
    scribble_masks,
)
from medseg.models.interactive_net import (
    CHANNELS,
    CropWindow,
    build_network,
    crop_resize,
    crop_window,
    disk_map,
    encode_inputs,
    paste_back,
)
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


# ---- geometry ------------------------------------------------------------------------
def test_crop_window_centres_and_enlarges():
    assert crop_window((10, 20, 29, 39), (100, 100), enlarge=1.5) == CropWindow(15, 5, 30)


def test_crop_window_is_shifted_inside_the_image():
    assert crop_window((0, 0, 9, 9), (100, 100), enlarge=2.0, min_side=2) == CropWindow(0, 0, 20)
    far = crop_window((95, 90, 99, 99), (100, 100), enlarge=2.0, min_side=2)
    assert far == CropWindow(80, 80, 20)


def test_crop_window_larger_than_a_side_is_centred_on_the_image():
    # side 80 > H = 50: centred vertically (y0 = -15); fits horizontally around x = 120
    assert crop_window((100, 10, 139, 29), (50, 200), enlarge=2.0) == CropWindow(-15, 80, 80)
    # never larger than the longest image side
    assert crop_window((0, 0, 5, 5), (40, 60), min_side=500).side == 60


def test_crop_window_min_side():
    assert crop_window((50, 50, 50, 50), (200, 200), min_side=64) == CropWindow(19, 19, 64)


def test_crop_resize_and_paste_back_land_on_the_same_pixels():
    mask = np.zeros((256, 256), np.float32)
    mask[64:128, 32:96] = 1.0
    window = CropWindow(0, 0, 256)
    crop = crop_resize(mask, window, 128)
    assert crop.shape == (1, 128, 128)
    expected = np.zeros((128, 128), np.float32)
    expected[32:64, 16:48] = 1.0
    np.testing.assert_array_equal(crop[0], expected)
    logits = np.where(crop[0] > 0.5, 10.0, -10.0)
    back = paste_back(logits, window, (256, 256))
    np.testing.assert_array_equal(back > 0, mask > 0)


def test_crop_outside_the_image_is_filled_and_pasted_back_exactly():
    image = np.arange(100 * 100, dtype=np.float32).reshape(100, 100)
    window = CropWindow(-20, 60, 80)
    crop = crop_resize(image, window, 80, fill=-1.0)[0]
    np.testing.assert_array_equal(crop[20:, :40], image[:60, 60:])
    assert np.all(crop[:20] == -1.0) and np.all(crop[:, 40:] == -1.0)
    back = paste_back(crop, window, (100, 100), fill=-5.0)
    np.testing.assert_array_equal(back[:60, 60:], image[:60, 60:])
    assert np.all(back[60:] == -5.0) and np.all(back[:, :60] == -5.0)


def test_rgb_crop_is_channels_first():
    image = np.zeros((10, 10, 3), np.float32)
    image[..., 1] = 1.0
    crop = crop_resize(image, CropWindow(0, 0, 10), 10)
    assert crop.shape == (3, 10, 10)
    assert crop[1].min() == 1.0 and crop[0].max() == 0.0 and crop[2].max() == 0.0


def test_points_map_to_network_pixel_centres():
    window = CropWindow(10, 20, 64)  # 64 image px -> 128 network px: scale 2
    net = window.to_net(np.array([[30.0, 20.0], [20.0, 10.0]]), 128)
    np.testing.assert_allclose(net, [[20.5, 20.5], [0.5, 0.5]])
    np.testing.assert_allclose(window.box_to_net((20, 10, 83, 73), 128), [0.5, 0.5, 126.5, 126.5])


# ---- encoding ------------------------------------------------------------------------
def test_disk_map_radius_three():
    d = disk_map(np.array([[10.0, 12.0]]), 32)
    assert d.sum() == 29  # integer points with x^2 + y^2 <= 9
    assert d[12, 10] == 1 and d[12, 13] == 1 and d[12, 14] == 0 and d[15, 10] == 1


def test_encode_inputs_channel_order_and_content():
    s = 32
    image = np.full((3, s, s), 0.5, np.float32)
    image[0, 0, 0] = 1.0
    scribble = np.zeros((s, s), bool)
    scribble[20, 20] = True
    prev = np.full((s, s), 0.25, np.float32)
    x = encode_inputs(
        image,
        box=np.array([2.0, 3.0, 5.0, 6.0]),
        pos_points=np.array([[10.0, 12.0]]),
        neg_points=np.array([[25.0, 5.0]]),
        neg_scribble=scribble,
        prev_prob=prev,
    )
    assert x.shape == (len(CHANNELS), s, s) == (9, s, s)
    assert CHANNELS[3:] == ("box", "pos_clicks", "neg_clicks", "pos_scribbles",
                            "neg_scribbles", "prev_mask")  # fmt: skip
    assert abs(float(x[:3].mean())) < 1e-6  # standardised image
    assert x[0, 0, 0] > 0 and x[1, 0, 0] < 0
    assert x[3].sum() == 16 and x[3, 3:7, 2:6].min() == 1
    assert x[4].sum() == 29 and x[4, 12, 10] == 1
    assert x[5].sum() == 29 and x[5, 5, 25] == 1
    assert x[6].sum() == 0
    assert x[7].sum() == 9 and x[7, 19:22, 19:22].min() == 1
    np.testing.assert_array_equal(x[8], prev)


def test_network_forward_shape():
    import torch

    net = build_network((4, 8, 16), 1)
    out = net(torch.zeros(2, 9, 32, 32))
    assert tuple(out.shape) == (2, 1, 32, 32)


def test_object_input_puts_clicks_at_the_right_pixels(model):
    emb = model.encode(np.zeros((128, 128), np.float32))
    obj = ObjectPrompts(box=np.array([0.0, 0.0, 127.0, 127.0]), points=np.array([[10.0, 20.0]]),
                        labels=np.array([1]))  # fmt: skip
    x, window = model.object_input(emb, obj)
    assert window == CropWindow(0, 0, 128)  # 1.5 x 128 capped at the image: no resampling
    assert x[4, 20, 10] == 1 and x[4].sum() == 29 and x[5].sum() == 0
    assert x[3].min() == 1  # the box covers the whole window


# ---- windows and prompt parsing ---------------------------------------------------------
def test_object_window_rules():
    cfg = InteractiveConfig()
    box = ObjectPrompts(box=np.array([100.0, 100.0, 139.0, 139.0]))
    assert object_window(box, (400, 400), cfg) == CropWindow(90, 90, 60)
    click = ObjectPrompts(points=np.array([[200.0, 200.0]]), labels=np.array([1]))
    # 25 % of 400; centre 200.5 - 50 = 150.5 rounds half up
    assert object_window(click, (400, 400), cfg) == CropWindow(151, 151, 100)
    neg_only = ObjectPrompts(points=np.array([[200.0, 200.0]]), labels=np.array([0]))
    assert object_window(neg_only, (400, 400), cfg).side == 100
    prev = np.full((400, 400), -8.0, np.float32)
    prev[10:20, 10:20] = 8.0
    assert object_window(ObjectPrompts(mask_logits=prev), (400, 400), cfg) == CropWindow(3, 3, 24)


def test_scribble_masks_from_polylines_and_masks():
    out = scribble_masks([([(1, 1), (4, 1)], 1), {"points": [(2, 3)], "label": 0}], (5, 6))
    assert out.shape == (2, 5, 6)
    assert out[0].sum() == 4 and out[0, 1, 1:5].all()
    assert out[1].sum() == 1 and out[1, 3, 2]
    pos = np.zeros((5, 6), bool)
    pos[2, 2] = True
    np.testing.assert_array_equal(scribble_masks((pos, None), (5, 6))[0], pos)
    np.testing.assert_array_equal(scribble_masks({"negative": pos}, (5, 6))[1], pos)


def test_scribble_objects_from_the_simulator():
    from medseg.prompts.simulation import Scribble

    s = Scribble(points=np.array([[0, 0], [1, 1]]), label=1)
    out = scribble_masks([s], (3, 3))
    assert out[0].sum() == 2 and out[0, 0, 0] and out[0, 1, 1]


@pytest.mark.parametrize(
    "scribbles",
    [[], [([], 1)], (np.zeros((4, 4)), None), [([(9, 1)], 1)], [([(1, 1)], 2)], "abc"],
)
def test_bad_scribbles_raise(scribbles):
    with pytest.raises(PromptError):
        scribble_masks(scribbles, (4, 4))


def test_no_prompt_or_empty_mask_raises():
    cfg = InteractiveConfig()
    with pytest.raises(PromptError, match="nothing to segment"):
        object_window(ObjectPrompts(), (10, 10), cfg)
    empty = np.full((10, 10), -8.0, np.float32)
    with pytest.raises(PromptError, match="nothing to segment"):
        object_window(ObjectPrompts(mask_logits=empty), (10, 10), cfg)


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
