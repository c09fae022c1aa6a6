"""Marginal Dice/CE loss for partially labelled cases."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DeepSupervisionLoss, DiceCELoss

from medseg.training.losses import marginal_deep_supervision, marginal_dice_ce


def _inputs(b: int = 3, k: int = 4, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(b, k, size, size, generator=g)
    target = torch.randint(0, k, (b, 1, size, size), generator=g)
    return logits, target


def _reference() -> DiceCELoss:  # the trainer's loss
    return DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)


def test_equals_dice_ce_when_every_class_is_annotated() -> None:
    logits, target = _inputs()
    annotated = torch.ones(3, 4, dtype=torch.bool)
    assert torch.equal(marginal_dice_ce(logits, target, annotated), _reference()(logits, target))


def test_deep_supervision_equals_monai_when_every_class_is_annotated() -> None:
    logits, target = _inputs()
    low = torch.randn(3, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    outs, y = [logits, low], target.float()  # augmented labels are float, as in training
    annotated = torch.ones(3, 4, dtype=torch.bool)
    expected = DeepSupervisionLoss(_reference(), weight_mode="exp")(outs, y)
    assert torch.equal(marginal_deep_supervision(outs, y, annotated), expected)


def test_hand_computed_value_with_merged_background() -> None:
    # one sample, 3 classes, 2 voxels; class 2 not annotated
    logits = torch.log(torch.tensor([[[0.5, 0.1], [0.2, 0.8], [0.3, 0.1]]]))[..., None]
    target = torch.tensor([[[0, 1]]])[..., None]  # (1, 1, 2, 1)
    annotated = torch.tensor([[True, True, False]])
    loss = marginal_dice_ce(logits, target, annotated)
    ce = -(torch.log(torch.tensor(0.8)) + torch.log(torch.tensor(0.8))) / 2  # bg+2 = 0.8
    dice1 = 1 - (2 * 0.8 + 1e-5) / (1 + (0.2 + 0.8) + 1e-5)  # only class 1 has Dice
    torch.testing.assert_close(loss, ce + dice1)


def test_unannotated_class_is_not_pushed_down_at_background() -> None:
    logits, target = _inputs(b=1, k=3, size=4)
    target = torch.zeros_like(target)  # every voxel labelled background
    logits.requires_grad_(True)
    marginal_dice_ce(logits, target, torch.tensor([[True, True, False]])).backward()
    g = logits.grad[0]
    # the merged channel (bg + class 2) is raised as a whole: each of its logits gets the
    # same-sign gradient as background, in proportion to its probability ...
    p = torch.softmax(logits.detach(), 1)[0]
    ratio = g[2] / g[0]
    torch.testing.assert_close(ratio, p[2] / p[0])
    assert bool((g[2] <= 0).all())  # descent raises (never lowers) the unannotated logit
    # ... whereas the plain loss lowers class 2 everywhere
    logits.grad = None
    _reference()(logits, target).backward()
    assert bool((logits.grad[0, 2] > 0).all())


def test_no_annotated_foreground_gives_ce_only_and_shape_error() -> None:
    logits, target = _inputs(b=1, k=3, size=4)
    none = torch.tensor([[True, False, False]])
    expected = torch.zeros(())  # every class merged: p(merged) = 1, CE 0, no Dice term
    torch.testing.assert_close(marginal_dice_ce(logits, target, none), expected)
    with pytest.raises(ValueError, match=r"annotated must be \(B, 3\)"):
        marginal_dice_ce(logits, target, torch.ones(1, 2, dtype=torch.bool))
