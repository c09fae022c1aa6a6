from __future__ import annotations

import numpy as np
import pytest

import medseg
from medseg.errors import InputError, ModelError, PromptError
from medseg.inference.predictor import Predictor, as_image, guess_modality
from medseg.inference.propagation import PropagationConfig
from medseg.io.image import Image, LabelMap
from medseg.models import Decoded, PromptableModel


def _disc(shape, centre, radius) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


SHAPE = (96, 128)
DISC_A = _disc(SHAPE, (40, 40), 18)  # box (22, 22, 58, 58)
DISC_B = _disc(SHAPE, (56, 96), 14)  # box (82, 42, 110, 70)


def _image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = 40 + 150 * (DISC_A | DISC_B) + rng.normal(0, 6, SHAPE)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def predictor(litemedsam) -> Predictor:
    return Predictor(litemedsam, progress=False)


class _Counting:
    """Wraps a model method and counts calls."""

    def __init__(self, monkeypatch, obj, name) -> None:
        self.calls = 0
        original = getattr(obj, name)

        def wrapper(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(obj, name, wrapper)


def test_box_on_2d_gray_and_rgb(predictor: Predictor) -> None:
    img = _image()
    predictor.set_image(img)
    r = predictor.predict(box=(22, 22, 58, 58))
    assert r.mask.shape == SHAPE and r.mask.dtype == bool and r.logits.shape == SHAPE
    assert _dice(r.mask, DISC_A) > 0.9
    assert 0 < r.score <= 1.5 and r.scores.shape == (1,)
    np.testing.assert_array_equal(r.labels, r.mask.astype(np.uint8))
    predictor.set_image(np.repeat(img[..., None], 3, axis=-1))  # same pixels as RGB
    rgb = predictor.predict(box=(22, 22, 58, 58))
    np.testing.assert_array_equal(rgb.mask, r.mask)


def test_result_keeps_image_geometry(predictor: Predictor) -> None:
    img = Image(_image(), spacing=(0.5, 0.7), origin=(10.0, -4.0), modality="XR")
    predictor.set_image(img)
    lm = predictor.predict(box=(82, 42, 110, 70)).to_label_map({1: "disc"})
    assert isinstance(lm, LabelMap) and lm.same_geometry(img)
    assert lm.label_names == {1: "disc"} and _dice(lm.array == 1, DISC_B) > 0.9


def test_embedding_is_computed_once_and_cached(predictor, litemedsam, monkeypatch) -> None:
    enc = _Counting(monkeypatch, litemedsam, "encode")
    img = _image(seed=3)
    predictor.set_image(img)
    predictor.predict(box=(22, 22, 58, 58))
    predictor.predict(box=(82, 42, 110, 70))
    assert enc.calls == 1
    predictor.set_image(img.copy())  # same content: cache hit
    predictor.predict(points=[(40, 40)])
    assert enc.calls == 1
    info = predictor.cache_info()
    assert info.misses == 1 and info.hits >= 3 and info.size == 1


def test_cache_is_bounded_lru(litemedsam, monkeypatch) -> None:
    enc = _Counting(monkeypatch, litemedsam, "encode")
    p = Predictor(litemedsam, cache_size=1)
    a, b = _image(seed=4), _image(seed=5)
    p.set_image(a)
    p.set_image(b)  # evicts a
    p.set_image(a)
    assert enc.calls == 3 and p.cache_info().size == 1
    with pytest.raises(InputError, match="cache_size"):
        Predictor(litemedsam, cache_size=0)


def test_several_boxes_share_one_decoder_pass(predictor, litemedsam, monkeypatch) -> None:
    predictor.set_image(_image())
    dec = _Counting(monkeypatch, litemedsam, "decode")
    r = predictor.predict(boxes=[(22, 22, 58, 58), (82, 42, 110, 70)])
    assert dec.calls == 1
    assert r.mask.shape == (2, *SHAPE) and r.scores.shape == (2,) and r.num_objects == 2
    assert _dice(r.mask[0], DISC_A) > 0.9 and _dice(r.mask[1], DISC_B) > 0.9
    assert set(np.unique(r.labels)) == {0, 1, 2}
    assert _dice(r.labels == 2, DISC_B) > 0.9


def test_multimask_and_mask_input_refinement(predictor: Predictor) -> None:
    predictor.set_image(_image())
    multi = predictor.predict(box=(22, 22, 58, 58), multimask=True)
    assert multi.mask.shape == (3, *SHAPE) and multi.scores.shape == (3,)
    assert multi.score == pytest.approx(float(multi.scores.max()))
    np.testing.assert_array_equal(multi.labels, multi.mask[multi.best])
    first = predictor.predict(box=(22, 22, 58, 58))
    refined = predictor.predict(box=(22, 22, 58, 58), mask_input=first)
    assert _dice(refined.mask, DISC_A) > 0.9
    from_bool = predictor.predict(box=(22, 22, 58, 58), mask_input=DISC_A)
    assert _dice(from_bool.mask, DISC_A) > 0.9
    with pytest.raises(PromptError, match="mask_input shape"):
        predictor.predict(box=(22, 22, 58, 58), mask_input=np.zeros((10, 10), bool))


def test_bad_prompts_raise_prompt_error(predictor: Predictor) -> None:
    with pytest.raises(PromptError, match="call set_image"):
        predictor.predict(box=(1, 1, 5, 5))
    predictor.set_image(_image())
    cases = [
        ({"box": (0, 0, 129, 20)}, "outside the image"),
        ({"box": (30, 10, 20, 40)}, "inverted"),
        ({"box": (30, 10, 30, 40)}, "empty"),
        ({"points": [(128, 5)]}, "outside the image"),
        ({"box": (1, 1, 5, 5), "slice_index": 0}, "need a 3D image"),
        ({"box3d": (1, 1, 0, 5, 5, 1)}, "need a 3D image"),
        ({"box": (1, 1, 5, 5), "boxes": [(1, 1, 5, 5)]}, "not both"),
        ({"boxes": []}, "boxes is empty"),
        ({"boxes": [(1, 1, 5, 5)], "multimask": True}, "multimask"),
        ({"boxes": [(1, 1, 5, 5), (2, 2, 6, 6)], "points": [(3, 3)]}, "points go with one"),
        ({}, "no prompt"),
        ({"point_labels": [1]}, "without points"),
        ({"mask_input": DISC_A}, "needs a box or points"),  # LiteMedSAM: mask alone untrained
    ]
    for kwargs, message in cases:
        with pytest.raises(PromptError, match=message):
            predictor.predict(**kwargs)


def test_bad_images_and_models(predictor: Predictor) -> None:
    bad = np.zeros((20, 20), np.float32)
    bad[3, 4] = np.nan
    with pytest.raises(InputError, match="NaN"):
        predictor.set_image(bad)
    with pytest.raises(InputError, match="ambiguous"):
        predictor.set_image(np.zeros((3, 20, 20)))
    with pytest.raises(InputError, match="expected"):
        predictor.set_image(np.zeros((2, 3, 20, 20)))
    with pytest.raises(InputError, match="5-channel"):
        predictor.set_image(Image(np.zeros((20, 20, 5)), channels=True))
    with pytest.raises(ModelError, match="unknown model 'sam9'"):
        medseg.Predictor("sam9")


class _BoxOnly(PromptableModel):
    name = "box-only"
    prompt_kinds = frozenset({"box"})

    def encode(self, image):
        return image.shape[:2]

    def decode(self, embedding, prompts, *, multimask=False):
        n = prompts.num_objects
        return Decoded(np.ones((n, 1, *embedding), np.float32), np.ones((n, 1), np.float32))


def test_unsupported_prompt_kinds_are_rejected() -> None:
    p = Predictor(_BoxOnly())
    p.set_image(np.zeros((8, 8), np.float32))
    assert p.predict(box=(1, 1, 4, 4)).mask.all()
    with pytest.raises(PromptError, match="does not accept points prompts; it accepts: box"):
        p.predict(points=[(2, 2)])
    with pytest.raises(PromptError, match="does not accept mask"):
        p.predict(box=(1, 1, 4, 4), mask_input=np.ones((8, 8), bool))
    with pytest.raises(PromptError, match="no multimask output"):
        p.predict(box=(1, 1, 4, 4), multimask=True)
    with pytest.raises(ModelError, match="model options"):
        Predictor(_BoxOnly(), backend="onnx")


def test_as_image_and_modality_rules() -> None:
    assert as_image(np.zeros((4, 5))).ndim == 2
    rgb = as_image(np.zeros((4, 5, 3), np.uint8))
    assert rgb.channels and rgb.modality == "RGB"
    vol = as_image(np.zeros((6, 4, 5)))
    assert vol.ndim == 3 and vol.shape == (6, 4, 5)
    hu = np.array([[-1000.0, 40.0], [300.0, 0.0]])
    assert guess_modality(Image(hu), hu) == "CT"
    assert guess_modality(Image(hu, modality="MR"), hu) == "MR"
    assert guess_modality(Image(hu / 10), hu / 10) == "unknown"
    # an MR with a few negative interpolation artefacts and a large range is not CT
    mr = np.full((200,), 9000.0)
    mr[0], mr[1] = -610.0, 30000.0
    assert guess_modality(Image(mr[None]), mr[None]) == "unknown"
    # 1 % air is enough; a huge 99.5th percentile is not HU
    ct = np.full((200,), 40.0)
    ct[:2] = -1000.0
    assert guess_modality(Image(ct[None]), ct[None]) == "unknown"  # max < 100
    ct[2] = 300.0
    assert guess_modality(Image(ct[None]), ct[None]) == "CT"
    assert guess_modality(Image(ct[None] * 100), ct[None] * 100) == "unknown"


def _ellipsoid_volume(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(10, 48, 48) noisy volume with a bright ellipsoid in slices 2..7."""
    zz, yy, xx = np.mgrid[:10, :48, :48]
    obj = ((zz - 4.5) / 3.2) ** 2 + ((yy - 22) / 11) ** 2 + ((xx - 25) / 14) ** 2 <= 1
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 0.15, obj.shape) + obj).astype(np.float32), obj


@pytest.mark.slow
def test_3d_propagation_recovers_ellipsoid_and_stops(predictor, litemedsam, monkeypatch) -> None:
    vol, obj = _ellipsoid_volume()
    first, last = np.flatnonzero(obj.any(axis=(1, 2)))[[0, -1]]
    img = Image(vol, spacing=(2.0, 1.0, 1.0), origin=(5.0, 6.0, 7.0))
    enc = _Counting(monkeypatch, litemedsam, "encode")
    predictor.set_image(img)
    assert enc.calls == 0  # volumes are embedded lazily
    r = predictor.predict(box=(11, 11, 39, 33), slice_index=4)
    assert r.mask.shape == vol.shape and r.logits.shape == vol.shape
    ((lo, hi),) = r.slice_ranges
    assert first - 1 <= lo <= first + 1 and last - 1 <= hi <= last + 1
    assert not r.mask[: first - 1].any() and not r.mask[last + 2 :].any()
    assert _dice(r.mask, obj) > 0.85
    assert enc.calls <= hi - lo + 3  # each visited slice embedded once
    assert r.info["start_slice"] == 4 and r.to_label_map().same_geometry(img)
    # box3d limits the z range (start: middle slice 4, cached); the keyframe rule visited
    # slices 4, 6, 8, 7, 2, 0, 1 (2 mm spacing: first step 2 slices), so 3 and 5 are new
    calls = enc.calls
    limited = predictor.predict(box3d=(11, 11, 3, 39, 33, 5))
    assert limited.slice_ranges == ((3, 5),) and not limited.mask[[0, 1, 2, 6, 7]].any()
    assert enc.calls == calls + 2


class _BoxFill(_BoxOnly):
    """Fake model: logits +5 inside the (rounded) box, -5 outside."""

    def decode(self, embedding, prompts, *, multimask=False):
        out = np.full((prompts.num_objects, 1, *embedding), -5.0, np.float32)
        for i, (x0, y0, x1, y1) in enumerate(np.round(prompts.boxes).astype(int)):
            out[i, 0, y0 : y1 + 1, x0 : x1 + 1] = 5.0
        return Decoded(out, np.ones((prompts.num_objects, 1), np.float32))


def test_3d_several_boxes_propagate_together() -> None:
    p = Predictor(_BoxFill(), propagation=PropagationConfig(margin=0.0, min_margin=0.0))
    p.set_image(np.zeros((4, 16, 20), np.float32))
    r = p.predict(boxes=[(1, 1, 4, 5), (10, 8, 18, 14)], slice_index=2, mask_input=None)
    assert r.mask.shape == (2, 4, 16, 20) and r.labels.shape == (4, 16, 20)
    assert r.slice_ranges == ((0, 3), (0, 3)) and r.num_objects == 2
    assert r.labels[0, 1, 1] == 1 and r.labels[3, 8, 10] == 2 and r.labels[0, 0, 0] == 0
    assert int(r.mask[0].sum()) == 4 * 4 * 5 and int(r.mask[1].sum()) == 4 * 7 * 9


def test_3d_prompt_errors(predictor: Predictor) -> None:
    vol, _ = _ellipsoid_volume()
    predictor.set_image(vol)
    cases = [
        ({"box": (11, 11, 39, 33)}, "give slice_index"),
        ({"box": (11, 11, 39, 33), "slice_index": 10}, "outside the volume"),
        ({"box": (11, 11, 39, 33), "slice_index": -1}, "outside the volume"),
        ({"box3d": (11, 11, 4, 39, 33, 10)}, "outside the volume"),
        ({"box3d": (11, 11, 4, 39, 33, 6), "slice_index": 8}, "outside box3d"),
        ({"box3d": (11, 11, 4, 39, 33, 6), "box": (1, 1, 4, 4)}, "not both"),
        ({"box": (11, 11, 39, 33), "slice_index": 5, "multimask": True}, "multimask"),
    ]
    for kwargs, message in cases:
        with pytest.raises(PromptError, match=message):
            predictor.predict(**kwargs)


class _Bright(PromptableModel):
    """Fake model on images of 0/1 objects: a box gives the bright pixels inside it (or a
    faint, unstable blob where there are none); a positive click adds every bright pixel
    to ``mask_input``, a negative one clears it."""

    name = "bright"
    prompt_kinds = frozenset({"box", "points", "mask"})
    refines_previous_mask = True

    def encode(self, image):
        return np.asarray(image) > 0.5

    def decode(self, embedding, prompts, *, multimask=False):
        out = np.full((1, 1, *embedding.shape), -6.0, np.float32)
        if prompts.points is not None:
            mask = prompts.mask_input[0] > 0 if prompts.mask_input is not None else embedding * 0
            for label in prompts.point_labels[0]:
                mask = (mask | embedding) if label == 1 else np.zeros_like(mask)
            out[0, 0][mask] = 6.0
        else:
            x0, y0, x1, y1 = np.round(prompts.boxes[0]).astype(int)
            inside = np.zeros_like(embedding)
            inside[y0 : y1 + 1, x0 : x1 + 1] = True
            if (embedding & inside).any():
                out[0, 0][embedding & inside] = 6.0
            else:
                out[0, 0, (y0 + y1) // 2, (x0 + x1) // 2] = 0.5
        return Decoded(out, np.ones((1, 1), np.float32))


def test_3d_correction_on_another_slice_is_propagated_and_keeps_the_rest() -> None:
    vol = np.zeros((12, 20, 20), np.float32)
    vol[3:6, 7:13, 2:8] = 1.0  # slices 3..5
    vol[6:9, 7:13, 14:20] = 1.0  # the object jumps on slices 6..8: propagation stops
    p = Predictor(_Bright(), progress=False)
    p.set_image(vol)
    first = p.predict(box=(2, 7, 7, 12), slice_index=4)
    assert first.slice_ranges == ((3, 5),)
    fixed = p.predict(points=[(16, 9)], point_labels=[1], slice_index=7, mask_input=first)
    assert np.array_equal(fixed.mask, vol > 0) and fixed.slice_ranges == ((3, 8),)
    # a negative click on slice 8 ends the object there; the slices towards the core stay
    cut = p.predict(points=[(16, 9)], point_labels=[0], slice_index=8, mask_input=fixed)
    assert np.array_equal(cut.mask[:8], fixed.mask[:8]) and not cut.mask[8:].any()
    # a mask of neither the slice's nor the volume's shape is refused
    with pytest.raises(PromptError, match="mask_input shape"):
        p.predict(points=[(16, 9)], slice_index=7, mask_input=np.zeros((5, 20, 20), bool))
