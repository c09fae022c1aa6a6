"""medseg-interactive: crop/paste-back geometry, input encoding, network shape, and the
prompt windows and scribble parsing (no weights; the model itself: test_interactive_weights.py)."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import PromptError
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
