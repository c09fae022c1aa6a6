"""Training losses (:mod:`medseg.classify.losses`) on hand-built logits: exact values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import medseg.classify as mc
from medseg.classify.losses import (
    LOSSES,
    check_loss,
    make_loss,
    ordinal_loss,
    sord_loss,
    sord_targets,
)
from medseg.errors import InputError


def test_ordinal_uniform_logits_exact() -> None:
    # p = (1/3, 1/3, 1/3), y = 1: CE = log 3; P(y>0) = 2/3 (target 1), P(y>1) = 1/3 (target 0)
    # -> both BCE terms are -log(2/3); total log 3 + log 1.5 = log 4.5
    loss = ordinal_loss(torch.zeros(1, 3), torch.tensor([1]))
    assert float(loss) == pytest.approx(math.log(4.5), abs=1e-6)


def test_ordinal_penalises_far_grades_more_than_ce() -> None:
    # same CE (p(true) = 1/2) but the wrong mass sits one grade away vs four grades away
    near = torch.log(torch.tensor([[0.5, 0.5, 1e-9, 1e-9, 1e-9]]))
    far = torch.log(torch.tensor([[0.5, 1e-9, 1e-9, 1e-9, 0.5]]))
    y = torch.tensor([0])
    ce = torch.nn.functional.cross_entropy
    assert float(ce(near, y)) == pytest.approx(float(ce(far, y)), abs=1e-6)
    # near: P(y>0) = 1/2, P(y>k) ~ 0 for k >= 1 -> mean BCE = log(2) / 4
    # far: P(y>k) = 1/2 for all four k -> mean BCE = log 2
    assert float(ordinal_loss(near, y)) == pytest.approx(math.log(2) * 1.25, abs=1e-6)
    assert float(ordinal_loss(far, y)) == pytest.approx(math.log(2) * 2, abs=1e-6)


def test_ordinal_two_classes_is_twice_ce_and_batch_mean() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(3.0), 0.0]])
    y = torch.tensor([1, 1])  # p(true) = 3/4 and 1/4
    ce = -(math.log(0.75) + math.log(0.25)) / 2
    assert float(ordinal_loss(logits, y)) == pytest.approx(2 * ce, abs=1e-6)


def test_ordinal_smoothing_applies_to_the_ce_term_only() -> None:
    logits, y = torch.zeros(1, 3), torch.tensor([2])
    # uniform p: smoothed CE is still log 3; P(y>0) = 2/3, P(y>1) = 1/3, both targets 1
    expect = math.log(3) + (-math.log(2 / 3) - math.log(1 / 3)) / 2
    assert float(ordinal_loss(logits, y, smoothing=0.2)) == pytest.approx(expect, abs=1e-6)


def test_ordinal_gradient_is_finite_for_extreme_logits() -> None:
    logits = torch.tensor([[80.0, -80.0, -80.0]], requires_grad=True)
    loss = ordinal_loss(logits, torch.tensor([2]))
    loss.backward()
    assert math.isfinite(float(loss.detach())) and torch.isfinite(logits.grad).all()


def test_sord_targets_and_loss_exact() -> None:
    q = sord_targets(torch.tensor([1, 0]), 3).numpy()
    e1, e4 = math.exp(-1), math.exp(-4)
    expect = np.array([[e1, 1, e1], [1, e1, e4]]) / np.array([[1 + 2 * e1], [1 + e1 + e4]])
    assert np.allclose(q, expect, atol=1e-7) and np.allclose(q.sum(1), 1.0)
    # uniform logits: cross-entropy against any distribution is log K
    assert float(sord_loss(torch.zeros(2, 3), torch.tensor([1, 0]))) == pytest.approx(
        math.log(3), abs=1e-6
    )
    logits = torch.log(torch.tensor([[0.25, 0.5, 0.25]]))
    want = -(expect[0] * np.log([0.25, 0.5, 0.25])).sum()
    assert float(sord_loss(logits, torch.tensor([1]))) == pytest.approx(want, abs=1e-6)


def test_make_loss_dispatch_and_errors() -> None:
    assert LOSSES == ("ce", "ordinal", "sord")
    logits, y = torch.zeros(1, 3), torch.tensor([1])
    assert float(make_loss("ordinal", "ce")(logits, y)) == pytest.approx(math.log(3), abs=1e-6)
    assert float(make_loss("ordinal", "ordinal")(logits, y)) == pytest.approx(math.log(4.5))
    assert make_loss("ordinal", "sord") is sord_loss
    bce = make_loss("multi-label", "ce")(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]))
    assert float(bce) == pytest.approx(math.log(2), abs=1e-6)
    with pytest.raises(InputError, match="unknown loss 'focal'"):
        check_loss("focal", "ordinal")
    with pytest.raises(InputError, match="multi-label data takes 'ce'"):
        make_loss("multi-label", "ordinal")


def test_train_rejects_bad_loss_before_training() -> None:
    rng = np.random.default_rng(0)
    images = {s: rng.random((4, 1, 8, 8)).astype(np.float32) for s in ("train", "val", "test")}
    labels = {s: np.array([0, 1, 0, 1]) for s in images}
    ds = mc.Dataset(images, labels, "binary", ["a", "b"], "mem")
    with pytest.raises(InputError, match="unknown loss 'hinge'"):
        mc.train(ds, None, mc.TrainOptions(model="resnet18", loss="hinge", progress=False))
