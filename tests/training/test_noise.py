"""Noisy-label training (``--label-noise``): GCE values, label correction, config, a run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from monai.losses import DeepSupervisionLoss, DiceCELoss

from medseg.cli.auto_train_options import LABEL_NOISE_CHOICES
from medseg.cli.main import main
from medseg.errors import InputError
from medseg.training.losses import marginal_deep_supervision, marginal_dice, marginal_dice_ce
from medseg.training.noise import (
    LABEL_NOISE_MODES,
    ROBUST_METHOD,
    NoiseConfig,
    NoiseRobustLoss,
    correct_targets,
    dice_gce,
    resolve_label_noise,
)
from medseg.training.noise_band import (
    band_dice_ce,
    boundary_band,
    decode_skipped,
    encode_skipped,
)
from medseg.training.synthetic import write_disk_dataset
from medseg.training.train_config import TrainConfig

ALL2 = torch.ones(1, 2, dtype=torch.bool)


def _logits(probs: list[list[float]]) -> torch.Tensor:
    """``(1, K, V, 1)`` logits whose softmax is ``probs`` (K rows of V voxels)."""
    return torch.log(torch.tensor([probs]))[..., None]


def test_gce_hand_computed_value() -> None:
    logits = _logits([[0.8, 0.4], [0.2, 0.6]])  # voxel 0: p(bg) 0.8, voxel 1: p(fg) 0.6
    target = torch.tensor([[[0, 1]]])[..., None]
    q = 0.7
    gce = ((1 - 0.8**q) / q + (1 - 0.6**q) / q) / 2
    dice = 1 - (2 * 0.6 + 1e-5) / (1 + (0.2 + 0.6) + 1e-5)
    torch.testing.assert_close(dice_gce(logits, target, ALL2, q), torch.tensor(gce + dice))


def test_gce_is_bounded_when_labels_are_flipped() -> None:
    # every voxel confidently predicted as the other class: CE ~ 30 per voxel, GCE <= 1/q
    logits = torch.tensor([[[[15.0, -15.0]], [[-15.0, 15.0]]]])  # (1, 2, 1, 2)
    flipped = torch.tensor([[[[1, 0]]]])
    ce = torch.nn.functional.cross_entropy(logits, flipped[:, 0])
    assert float(ce) == pytest.approx(30.0, abs=1e-4)
    gce = dice_gce(logits, flipped, ALL2, 0.7) - marginal_dice(logits, flipped, ALL2)
    assert float(gce) == pytest.approx(1 / 0.7, abs=1e-6)  # the bound 1/q, reached


def test_gce_partial_uses_the_merged_probability() -> None:
    # class 2 not annotated: a background voxel's p is p(bg) + p(class 2)
    logits = _logits([[0.5, 0.1], [0.2, 0.8], [0.3, 0.1]])
    target = torch.tensor([[[0, 1]]])[..., None]
    ann = torch.tensor([[True, True, False]])
    gce = 2 * (1 - 0.8**0.5) / 0.5 / 2  # both voxels have target probability 0.8
    dice = 1 - (2 * 0.8 + 1e-5) / (1 + (0.2 + 0.8) + 1e-5)
    torch.testing.assert_close(dice_gce(logits, target, ann, 0.5), torch.tensor(gce + dice))


def test_correct_targets_needs_confidence_and_consistency() -> None:
    # 4 voxels, label all background; full-res p(fg) 0.9, 0.7, 0.9, 0.1
    full = _logits([[0.1, 0.3, 0.1, 0.9], [0.9, 0.7, 0.9, 0.1]])
    # second level (same size here): agrees on voxel 0 and 3, says background on voxel 2
    low = _logits([[0.15, 0.2, 0.6, 0.9], [0.85, 0.8, 0.4, 0.1]])
    target = torch.zeros(1, 1, 4, 1)
    fixed, n = correct_targets([full, low], target, ALL2, threshold=0.8)
    assert n == 1 and fixed.dtype == target.dtype
    assert fixed[0, 0, :, 0].tolist() == [1.0, 0.0, 0.0, 0.0]
    # without deep supervision, confidence alone decides: voxels 0 and 2
    fixed, n = correct_targets(full, target, ALL2, threshold=0.8)
    assert n == 2 and fixed[0, 0, :, 0].tolist() == [1.0, 0.0, 1.0, 0.0]


def test_correct_targets_resizes_the_second_level() -> None:
    full = torch.zeros(1, 2, 4, 4)
    full[:, 1] = 5.0  # p(fg) = 0.993 everywhere
    low = torch.zeros(1, 2, 2, 2)
    low[:, 1] = 5.0
    low[0, 1, 0, 0] = -5.0  # top-left quarter says background
    fixed, n = correct_targets([full, low], torch.zeros(1, 1, 4, 4), ALL2, threshold=0.8)
    # bilinear resize: the top-left 2x2 block and its neighbours lose confidence
    assert n == int(fixed.sum()) and 0 < n < 16
    assert fixed[0, 0, 0, 0] == 0 and fixed[0, 0, 3, 3] == 1


def test_correct_targets_never_relabels_to_an_unannotated_class() -> None:
    full = _logits([[0.05, 0.05], [0.05, 0.9], [0.9, 0.05]])  # voxel 0 -> class 2, 1 -> 1
    target = torch.zeros(1, 1, 2, 1, dtype=torch.long)
    ann = torch.tensor([[True, True, False]])
    fixed, n = correct_targets(full, target, ann, threshold=0.8)
    assert n == 1 and fixed[0, 0, :, 0].tolist() == [0, 1]


def _plain() -> DeepSupervisionLoss:
    dice_ce = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
    return DeepSupervisionLoss(dice_ce, weight_mode="exp")


def _ds_inputs() -> tuple[list[torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    outs = [torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 4, 4, generator=g)]
    return outs, torch.randint(0, 3, (2, 1, 8, 8), generator=g).float()


def test_correct_equals_the_plain_loss_before_start_and_on_clean_labels() -> None:
    outs, y = _ds_inputs()
    ann = torch.ones(2, 3, dtype=torch.bool)
    loss = NoiseRobustLoss("correct", NoiseConfig(start=0.3))
    assert torch.equal(loss(outs, y, ann, progress=0.2), _plain()(outs, y))
    # labels equal to the confident prediction: nothing to correct, the plain loss
    clean = outs[0].argmax(1, keepdim=True).float()
    assert torch.equal(loss(outs, clean, ann, progress=0.5), _plain()(outs, clean))
    # after start, confidently and consistently contradicted labels are replaced: a network
    # sure of the map L at both levels recovers L from labels with 20 voxels flipped
    true = torch.randint(0, 3, (2, 1, 8, 8), generator=torch.Generator().manual_seed(1))
    sure = 20 * torch.nn.functional.one_hot(true[:, 0], 3).movedim(-1, 1).float()
    noisy = true.clone().float()
    noisy.view(-1)[:20] = (noisy.view(-1)[:20] + 1) % 3
    got = loss([sure, sure], noisy, ann, progress=0.5)
    assert loss.corrected_fraction == 20 / 128
    assert torch.equal(got, _plain()([sure, sure], true.float()))


def test_gce_with_deep_supervision_weights_the_levels() -> None:
    outs, y = _ds_inputs()
    ann = torch.ones(2, 3, dtype=torch.bool)
    low_y = torch.nn.functional.interpolate(y, size=(4, 4), mode="nearest-exact")
    expected = dice_gce(outs[0], y, ann) + 0.5 * dice_gce(outs[1], low_y, ann)
    got = NoiseRobustLoss("gce")(outs, y, ann, progress=0.0)
    torch.testing.assert_close(got, expected)


def _rect() -> torch.Tensor:
    """``(1, 1, 6, 6)``: foreground rows 1-3, columns 1-4."""
    t = torch.zeros(1, 1, 6, 6)
    t[0, 0, 1:4, 1:5] = 1
    return t


def test_boundary_band_on_a_rectangle() -> None:
    inner_ring = [[0] * 6, [0, 1, 1, 1, 1, 0], [0, 1, 0, 0, 1, 0], [0, 1, 1, 1, 1, 0],
                  [0] * 6, [0] * 6]  # fmt: skip
    outer_1 = [[1] * 6, [1, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 1],
               [1] * 6, [0] * 6]  # fmt: skip
    assert boundary_band(_rect(), 1, 0)[0, 0].int().tolist() == inner_ring
    assert boundary_band(_rect(), 0, 1)[0, 0].int().tolist() == outer_1
    both = boundary_band(_rect(), 1, 1)[0, 0].int()
    assert both.tolist() == (torch.tensor(inner_ring) | torch.tensor(outer_1)).tolist()
    # two voxels out, the last row joins the band; a 2-voxel inner band covers all of it
    assert boundary_band(_rect(), 0, 2)[0, 0, 5].tolist() == [True] * 6
    assert int(boundary_band(_rect(), 2, 0).sum()) == 12
    assert not boundary_band(_rect(), 0, 0).any()
    assert not boundary_band(torch.ones(1, 1, 3, 3, 3), 1, 1).any()  # 3D, one label
    with pytest.raises(ValueError, match=">= 0"):
        boundary_band(_rect(), -1, 1)


def test_band_dice_ce_hand_computed_value() -> None:
    logits = _logits([[0.1, 0.8, 0.4, 0.7], [0.9, 0.2, 0.6, 0.3]])  # p(fg) per voxel
    target = torch.tensor([[[1, 0, 3, 0]]])[..., None].float()  # voxel 2 (fg) skipped
    t, kept = decode_skipped(target, 2)
    assert t[0, 0, :, 0].tolist() == [1, 0, 1, 0] and kept.sum() == 3
    ce = -(math.log(0.9) + math.log(0.8) + math.log(0.7)) / 3
    dice = 1 - (2 * 0.9 + 1e-5) / (1 + (0.9 + 0.2 + 0.3) + 1e-5)
    torch.testing.assert_close(band_dice_ce(logits, target, ALL2), torch.tensor(ce + dice))


def test_band_without_skipped_voxels_is_the_plain_loss() -> None:
    outs, y = _ds_inputs()
    ann = torch.ones(2, 3, dtype=torch.bool)
    kept = torch.zeros_like(y, dtype=torch.bool)
    enc = encode_skipped(y, kept, 3)
    assert torch.equal(enc, y)
    torch.testing.assert_close(band_dice_ce(outs[0], y, ann), marginal_dice_ce(outs[0], y, ann))
    off = NoiseRobustLoss("band", NoiseConfig(band_fg=0, band_bg=0))
    torch.testing.assert_close(off(outs, y, ann, progress=0.9), _plain()(outs, y))


def test_band_loss_skips_the_band_at_every_level() -> None:
    outs, y = _ds_inputs()
    ann = torch.ones(2, 3, dtype=torch.bool)
    enc = encode_skipped(y, boundary_band(y, 1, 2), 3)
    low = torch.nn.functional.interpolate(enc, size=(4, 4), mode="nearest-exact")
    expected = band_dice_ce(outs[0], enc, ann) + 0.5 * band_dice_ce(outs[1], low, ann)
    got = NoiseRobustLoss("band", NoiseConfig(band_fg=1, band_bg=2))(outs, y, ann, 0.0)
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, _plain()(outs, y))


def test_band_with_correction_keeps_the_band_of_the_given_labels() -> None:
    sure = torch.zeros(1, 2, 6, 6)
    sure[:, 0] = 20.0  # confidently background everywhere
    cfg = NoiseConfig(band_fg=1, band_bg=1, band_correct=True, start=0.5)
    loss = NoiseRobustLoss("band", cfg)
    # the rectangle is relabelled background, but its band (28 voxels) stays skipped
    skipped = boundary_band(_rect(), 1, 1)
    expected = marginal_deep_supervision(sure, encode_skipped(_rect() * 0, skipped, 2), ALL2,
                                         band_dice_ce)  # fmt: skip
    torch.testing.assert_close(loss(sure, _rect(), ALL2, progress=0.5), expected)
    assert loss.corrected_fraction == 12 / 36
    before = marginal_deep_supervision(sure, encode_skipped(_rect(), skipped, 2), ALL2,
                                       band_dice_ce)  # fmt: skip
    torch.testing.assert_close(loss(sure, _rect(), ALL2, progress=0.4), before)


def test_modes_and_config_validation() -> None:
    assert LABEL_NOISE_CHOICES == LABEL_NOISE_MODES
    assert resolve_label_noise("robust") == ROBUST_METHOD == "band"
    assert NoiseRobustLoss("robust").method == "band"
    assert (NoiseConfig().band_fg, NoiseConfig().band_bg) == (1, 2)
    assert resolve_label_noise("none") == "none"
    assert TrainConfig(iterations=1, label_noise="robust").label_noise == "robust"
    with pytest.raises(InputError, match="unknown label-noise mode 'noisy': use one of none"):
        TrainConfig(iterations=1, label_noise="noisy")
    with pytest.raises(InputError, match="needs no robust loss"):
        NoiseRobustLoss("none")


def test_auto_train_with_label_noise_robust(tmp_path: Path) -> None:
    """A tiny synthetic dataset trains through the CLI with ``--label-noise robust``, with
    the band loss in use (``robust`` = ``band``)."""
    torch.manual_seed(0)
    root = write_disk_dataset(tmp_path / "ds", 6, (32, 32))
    model = tmp_path / "model"
    args = ["auto", "train", str(root), "--out", str(model), "--iterations", "12"]
    assert main([*args, "--label-noise", "robust", "--threads", "1"]) == 0
    cfg = json.loads((model / "fold_0" / "train_config.json").read_text())
    assert cfg["label_noise"] == "robust"
    state = torch.load(model / "fold_0" / "checkpoint_final.pt", weights_only=False)
    assert state["iteration"] == 12 and state["config"]["label_noise"] == "robust"
    assert all(math.isfinite(h["train_loss"]) for h in state["history"])
    with pytest.raises(SystemExit):
        main([*args, "--label-noise", "noisy"])
