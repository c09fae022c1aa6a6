"""Foundation click fine-tuning: the leave-datasets-out split, the embedding cache and its
targets, click sampling, mask feedback and a tiny training run on a synthetic cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
from clicks_weights import write_clicks_weights  # tests/_support

from medseg.errors import InputError
from medseg.prompts.simulation import next_click
from medseg.training.foundation.data import ClickCache, Target, write_cache
from medseg.training.foundation.split import LEAVE_OUT_GROUPS, group_of
from medseg.training.foundation.trainer import (
    TRAINED_PREFIXES,
    FoundationTrainConfig,
    _correction,
    _decode,
    _mask_input,
    load_decoder,
    save_decoder,
    seg_loss,
    train,
)

BENCH_2D_UNSEEN = ("busi_breast_us", "hc18_fetal_head_us", "jsrt_scr_cxr", "glas_colon_glands",
                   "cvc_colondb_polyp", "tg3k_thyroid_us", "drive_retina_vessels",
                   "npc_nasopharynx_t2_mr")  # fmt: skip


def test_split_groups_are_disjoint_and_hold_the_benchmark_sets() -> None:
    train, left = set(LEAVE_OUT_GROUPS["train"]), set(LEAVE_OUT_GROUPS["left_out"])
    assert not train & left
    assert left == set(BENCH_2D_UNSEEN)
    assert len(train) == len(LEAVE_OUT_GROUPS["train"]) == 22
    assert group_of("kvasir_seg_sample") == "train"
    assert group_of("busi_breast_us") == "left_out"
    assert group_of("pydicom_samples") is None


def _labels() -> np.ndarray:
    lab = np.zeros((3, 256, 256), np.uint8)
    lab[0, 10:30, 10:30] = 1  # 400 px
    lab[0, 100:103, 100:103] = 2  # 9 px: below min_area 16
    lab[1, 50:60, 50:60] = 1  # instance map merged: two components
    lab[1, 80:90, 80:90] = 1
    lab[2, 0:5, 0:5] = 3  # 25 px, other dataset
    return lab


def _meta() -> list[dict]:
    return [
        {"dataset": "a", "task": "semantic", "resized": [256, 200]},
        {"dataset": "b", "task": "instance", "resized": [128, 256]},
        {"dataset": "c", "task": "semantic", "resized": [256, 256]},
    ]


@pytest.fixture()
def cache_dir(tmp_path):
    emb = np.arange(3, dtype=np.float32)[:, None, None, None] * np.ones(
        (3, 256, 64, 64), np.float32
    )
    return write_cache(tmp_path / "cache", emb, _labels(), _meta())


def test_cache_targets_classes_components_and_min_area(cache_dir) -> None:
    cache = ClickCache(cache_dir)
    assert cache.targets == [Target(0, 1), Target(1, 1, 1), Target(1, 1, 2), Target(2, 3)]
    assert list(cache.by_dataset) == ["a", "b", "c"]
    assert cache.mask(Target(1, 1, 2)).sum() == 100 and cache.mask(Target(1, 1, 2))[85, 85]
    assert cache.resized(Target(1, 1, 1)) == (128, 256)
    emb, masks, resized = cache.batch([Target(2, 3), Target(0, 1)])
    assert emb.dtype == np.float32 and emb.shape == (2, 256, 64, 64)
    assert emb[0].min() == emb[0].max() == 2.0 and emb[1].max() == 0.0
    assert masks.sum((1, 2)).tolist() == [25, 400] and resized == [(256, 256), (256, 200)]
    assert ClickCache(cache_dir, datasets=("c",)).targets == [Target(2, 3)]
    with pytest.raises(InputError, match="no target with >= 26 pixels"):
        ClickCache(cache_dir, datasets=("c",), min_area=26)


def test_cache_sampling_is_balanced_over_datasets(cache_dir) -> None:
    cache = ClickCache(cache_dir)
    picks = cache.sample(np.random.default_rng(0), 3000)
    counts = np.bincount([t.index for t in picks], minlength=3)
    assert abs(counts[0] - 1000) < 100 and abs(counts[2] - 1000) < 100  # b: 2 targets, 1/3


def test_cache_rejects_a_bad_folder(tmp_path) -> None:
    with pytest.raises(InputError, match="not a click embedding cache"):
        ClickCache(tmp_path)
    folder = write_cache(tmp_path / "c", np.zeros((1, 256, 64, 64)), _labels()[:1], _meta()[:1])
    (folder / "count.txt").write_text("2")
    with pytest.raises(InputError, match="count 2, 1 samples"):
        ClickCache(folder)


def test_correction_click_centre_and_nothing_left() -> None:
    gt = np.zeros((32, 32), bool)
    gt[4:15, 4:15] = True
    pred = np.zeros_like(gt)
    clicked = np.zeros_like(gt)
    rng = np.random.default_rng(0)
    x, y, lab = _correction(pred, gt, clicked, rng, p_center=1.0)
    c = next_click(pred, gt)
    assert (x, y, lab) == (float(c.point[0]), float(c.point[1]), 1) == (9.0, 9.0, 1)
    assert _correction(gt, gt, clicked, rng, p_center=1.0) == (0.0, 0.0, -1)
    assert _correction(gt, gt, clicked, rng, p_center=0.0) == (0.0, 0.0, -1)
    fp = gt.copy()
    fp[20:31, 20:31] = True  # a false positive bigger than any miss
    for _ in range(20):  # random picks stay deep inside the false positive
        x, y, lab = _correction(fp, gt, clicked, rng, p_center=0.0)
        assert lab == 0 and 22 <= x <= 28 and 22 <= y <= 28


def test_mask_input_pads_outside_the_image_and_binarises() -> None:
    import torch

    prev = torch.full((2, 1, 256, 256), 3.0)
    prev[1, 0, 0, 0] = -0.5
    m = _mask_input(prev, [(100, 256), (256, 50)], binary=False)
    assert float(m[0, 0, :100].min()) == 3.0 and float(m[0, 0, 100:].max()) == -8.0
    assert float(m[1, 0, :, 50:].max()) == -8.0 and float(m[1, 0, 0, 0]) == -0.5
    b = _mask_input(prev, [(256, 256), (256, 256)], binary=True)
    assert set(torch.unique(b).tolist()) == {-8.0, 8.0} and float(b[1, 0, 0, 0]) == -8.0
    assert float(prev[0, 0, 200, 0]) == 3.0  # the input is not modified


def test_seg_loss_is_low_for_a_confident_correct_mask() -> None:
    import torch

    t = torch.zeros(1, 1, 8, 8)
    t[..., :4, :] = 1.0
    good, bad = float(seg_loss((t * 2 - 1) * 20, t)), float(seg_loss(-(t * 2 - 1) * 20, t))
    assert good < 0.01 and bad > 10.0


def test_config_rejects_bad_probabilities() -> None:
    with pytest.raises(InputError, match="p_box must be in"):
        FoundationTrainConfig(p_box=1.5)
    with pytest.raises(InputError, match="batch_size"):
        FoundationTrainConfig(batch_size=0)
    with pytest.raises(InputError, match="prompt_lr_mult"):
        FoundationTrainConfig(prompt_lr_mult=0.0)


@pytest.fixture(scope="module")
def net():
    from medseg.training.foundation.trainer import build_net

    return build_net()


def _snapshot(net) -> dict:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _disc_cache(tmp_path, seed: int = 0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:256, :256]
    lab = np.zeros((2, 256, 256), np.uint8)
    lab[0][(yy - 100) ** 2 + (xx - 120) ** 2 < 40**2] = 1
    lab[1][60:140, 90:200] = 1
    emb = rng.normal(0, 0.1, (2, 256, 64, 64)).astype(np.float32)
    meta = [{"dataset": "a", "task": "semantic", "resized": [256, 256]}] * 2
    return ClickCache(write_cache(tmp_path / "disc", emb, lab, meta))


@pytest.mark.slow
def test_tiny_training_changes_only_the_trained_parts(net, tmp_path) -> None:
    """Two steps: prompt encoder / mask decoder entries used by the single-mask output change;
    the image encoder, the IoU head and the multimask output MLPs stay bit-identical."""
    before = _snapshot(net)
    cfg = FoundationTrainConfig(max_steps=2, batch_size=2, max_corrections=1, lr=1e-3,
                                p_box=1.0, warmup_steps=1, num_threads=2)  # fmt: skip
    out = tmp_path / "w.pt"
    result = train(_disc_cache(tmp_path), cfg, out, net=net, meta={"note": "test"})
    after = _snapshot(net)
    changed = {k for k in before if not np.array_equal(before[k].numpy(), after[k].numpy())}
    assert result.steps == 2
    assert not any(k.startswith("image_encoder.") for k in changed)
    frozen = ("mask_decoder.iou_prediction_head.", *(f"mask_decoder.output_hypernetworks_mlps.{i}."
                                                     for i in (1, 2, 3)))  # fmt: skip
    assert not any(k.startswith(frozen) for k in changed)
    assert "mask_decoder.mask_tokens.weight" in changed
    for k in ("mask_decoder.output_upscaling.0.weight", "prompt_encoder.point_embeddings.2.weight",
              "mask_decoder.transformer.layers.0.self_attn.q_proj.weight"):  # fmt: skip
        assert k in changed
    net.load_state_dict(before)
    import torch

    saved = torch.load(out, weights_only=True)
    assert set(saved) == {k for k in before if k.startswith(TRAINED_PREFIXES)}
    assert all(v.dtype == torch.float16 for v in saved.values())
    side = json.loads(out.with_name("w.pt.json").read_text())
    assert side["steps"] == 2 and side["note"] == "test" and side["config"]["batch_size"] == 2


@pytest.mark.slow
def test_training_lowers_the_loss_on_a_fixed_target(net, tmp_path) -> None:
    """Six steps on one target with an exact box and no corrections: the loss of that
    (deterministic) prompt drops clearly."""
    from medseg.training.foundation.trainer import episode_loss

    before = _snapshot(net)
    cache = _disc_cache(tmp_path, seed=1)
    cache.targets, cache.by_dataset = cache.targets[:1], {"a": np.array([0])}
    cfg = FoundationTrainConfig(max_steps=6, batch_size=1, max_corrections=0, box_jitter=0.0,
                                p_box=1.0, lr=5e-4, warmup_steps=1, num_threads=2)  # fmt: skip
    emb, masks, resized = cache.batch(cache.targets)
    rng = np.random.default_rng(0)
    start = float(episode_loss(net, emb, masks, resized, rng, cfg)[0].detach())
    train(cache, cfg, None, net=net)
    end = float(episode_loss(net, emb, masks, resized, rng, cfg)[0].detach())
    net.load_state_dict(before)
    assert end < 0.8 * start


@pytest.mark.slow
def test_save_decoder_round_trips_into_the_model(net, tmp_path) -> None:
    from medseg.models.litemedsam_clicks import LiteMedSAMClicks, LiteMedSAMClicksConfig

    path = save_decoder(net, tmp_path / "d.pt", {"steps": 0})
    model = LiteMedSAMClicks(LiteMedSAMClicksConfig(backend="torch", decoder_weights=str(path)))
    w = model.net.state_dict()["mask_decoder.mask_tokens.weight"]
    ref = net.state_dict()["mask_decoder.mask_tokens.weight"]
    np.testing.assert_array_equal(w.numpy(), ref.half().float().numpy())


@pytest.mark.slow
def test_trainer_decoding_equals_the_registered_model(net, tmp_path) -> None:
    """The trainer's decoding of prompts in the 256 frame (box, clicks, previous low-res logits
    padded with -8) equals ``litemedsam-clicks``' decode of the same prompts given at the
    resolution of a 512 x 384 image (frame coordinates x 2) on the same embedding."""
    import torch
    import torch.nn.functional as F

    from medseg.models import create_model
    from medseg.models.litemedsam import LiteMedSAMEmbedding
    from medseg.prompts import PromptSet

    weights = write_clicks_weights(tmp_path / "w.pt")
    before = _snapshot(net)
    load_decoder(net, weights)
    model = create_model(
        "litemedsam-clicks", backend="torch", num_threads=2, decoder_weights=str(weights)
    )
    g = torch.Generator().manual_seed(3)
    feats = torch.randn((1, 256, 64, 64), generator=g) * 0.1
    prev = torch.randn((1, 1, 256, 256), generator=g) * 4.0
    box = np.array([[30.0, 40.0, 150.0, 170.0]])  # frame coordinates
    pts, labels = np.array([[[80.0, 90.0], [120.0, 101.0]]]), np.array([[1, 0]])
    with torch.no_grad():
        mask_in = _mask_input(prev, [(256, 192)], binary=False)
        points = (torch.tensor(pts, dtype=torch.float32), torch.tensor(labels))
        low = _decode(net, feats, torch.tensor(box, dtype=torch.float32), points, mask_in)
    # Image-resolution logits whose 2 x 2 area average is ``prev`` inside the image.
    image_logits = np.kron(prev[0, 0, :256, :192].numpy(), np.ones((2, 2), np.float32))[None]
    prompts = PromptSet(boxes=box * 2.0, points=pts * 2.0, point_labels=labels,
                        mask_input=image_logits)  # fmt: skip
    got = model.decode(LiteMedSAMEmbedding(feats, (512, 384), (256, 192)), prompts).logits
    want = F.interpolate(low[..., :256, :192], size=(512, 384), mode="bilinear",
                         align_corners=False).numpy()  # fmt: skip
    net.load_state_dict(before)
    assert got.shape == (1, 1, 512, 384)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_load_decoder_rejects_other_weights(net, tmp_path) -> None:
    import torch

    torch.save({"mask_decoder.x": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(InputError, match="does not hold exactly"):
        load_decoder(net, tmp_path / "bad.pt")
