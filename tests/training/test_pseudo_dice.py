"""The trainers' Dice is medseg.metrics' Dice: exact values on hand-built batches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medseg.metrics.overlap import dice
from medseg.training.interactive.trainer import batch_dice
from medseg.training.pseudo_dice import class_counts, pseudo_dice

PRED = torch.tensor([[0, 1, 1, 2, 2, 0], [1, 1, 0, 2, 0, 0]])
TARGET = torch.tensor([[0, 1, 0, 2, 0, 0], [1, 0, 0, 2, 2, 0]])


def test_class_counts_and_pseudo_dice_exact() -> None:
    full = torch.ones(2, 4, dtype=torch.bool)  # class 3: no voxel anywhere
    counts = class_counts(PRED, TARGET, full, 4)
    # class 1: tp 2 (0,1) (1,0), fp 2 (0,2) (1,1), fn 0; class 2: tp 2, fp 1 (0,4), fn 1 (1,4)
    assert counts.tolist() == [[0, 2, 2, 0], [0, 2, 1, 0], [0, 0, 1, 0]]
    got = pseudo_dice(counts)
    assert got[:2] == [4 / 6, 4 / 6] and math.isnan(got[2])
    # the same numbers as medseg.metrics.dice on the pooled masks, and as the former formula
    pred, target = PRED.numpy(), TARGET.numpy()
    for c, d in zip((1, 2), got, strict=False):
        assert d == dice(pred == c, target == c)
        tp, fp, fn = counts[:, c]  # float64, as the trainer's former code divided them
        assert d == float(2 * tp / (2 * tp + fp + fn))


def test_pseudo_dice_skips_unannotated_classes_of_a_sample() -> None:
    ann = torch.tensor([[True, True, True], [True, True, False]])  # sample 1 lacks class 2
    counts = class_counts(PRED, TARGET, ann, 3)
    assert counts[:, 2].tolist() == [1, 1, 0]  # only sample 0: tp (0,3), fp (0,4)
    pred, target = PRED.numpy(), TARGET.numpy()
    assert pseudo_dice(counts) == [4 / 6, dice(pred[0] == 2, target[0] == 2)]
    assert pseudo_dice(counts)[1] == pytest.approx(2 / 3)


def test_interactive_batch_dice_is_the_metrics_dice() -> None:
    logits = torch.tensor([[[[2.0, -1.0, 0.5], [-3.0, 1.0, -1.0]]],
                           [[[-1.0, -1.0, -1.0], [-1.0, 4.0, 4.0]]]])  # fmt: skip
    gt = torch.tensor([[[[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]]],
                       [[[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]])  # fmt: skip
    # sample 0: pred {00,02,11}, gt {00,01,11}: 2*2/6; sample 1: pred {11,12}, gt {11}: 2/3
    assert batch_dice(logits, gt) == pytest.approx((4 / 6 + 2 / 3) / 2)
    expected = np.mean([dice(logits[i, 0].numpy() > 0, gt[i, 0].numpy() > 0) for i in range(2)])
    assert batch_dice(logits, gt) == expected
    # the former hand-written formula gives the same number on these (non-empty) targets
    pred = (logits > 0).float()
    inter = (pred * gt).sum(dim=(1, 2, 3))
    old = (2 * inter / (pred.sum(dim=(1, 2, 3)) + gt.sum(dim=(1, 2, 3))).clamp(min=1)).mean()
    assert batch_dice(logits, gt) == pytest.approx(float(old), abs=1e-7)
    # empty prediction of an empty target: 1.0, the metrics' rule
    assert batch_dice(torch.full((1, 1, 2, 2), -1.0), torch.zeros(1, 1, 2, 2)) == 1.0
