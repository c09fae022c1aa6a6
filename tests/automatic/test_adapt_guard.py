"""Mirror-consistency term, agreement measure and agreement rule of the test-time
adaptation (``medseg.automatic.adapt``, ``medseg.automatic.adapt_terms``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.automatic.adapt import AdaptConfig, adapt_network
from medseg.automatic.adapt_terms import (
    flip_consistency,
    mask_agreement,
    prediction_entropy,
    sample_patches,
)
from medseg.errors import InputError


def _tiny_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.InstanceNorm2d(4, affine=True),
        torch.nn.LeakyReLU(0.01),
        torch.nn.Conv2d(4, 2, 1),
    ).eval()


def _image_data(seed: int = 0) -> np.ndarray:
    """``(1, 24, 24)`` float32: a bright square on noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (1, 24, 24)).astype(np.float32)
    x[0, 6:14, 6:14] += 3
    return x


def _state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


class _Fixed(torch.nn.Module):
    """Returns the same ``(1, 2, 1, 2)`` logits whatever the input."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits


def test_flip_consistency_exact() -> None:
    x = torch.zeros((1, 1, 1, 2))
    pointwise = torch.nn.Conv2d(1, 2, 1)  # commutes with mirroring: exactly 0
    xr = torch.tensor([[[[1.0, -2.0]]]])
    with torch.no_grad():
        value = float(flip_consistency(pointwise, xr, pointwise(xr)))
    assert value == pytest.approx(0, abs=1e-7)
    logits = torch.tensor([[[[np.log(3.0), 0.0]], [[0.0, 0.0]]]])  # p0 = (0.75, 0.5)
    net = _Fixed(logits)
    # p = ((.75, .5), (.25, .5)), mirrored p' = ((.5, .75), (.5, .25)):
    # per voxel sum_k (p - p')^2 = 2 * 0.25^2 = 0.125 at both voxels
    assert float(flip_consistency(net, x, logits)) == pytest.approx(0.125)


def test_mask_agreement_exact() -> None:
    a = np.array([[0, 1], [1, 1]])
    b = np.array([[0, 1], [0, 0]])
    assert mask_agreement(a, b, 2) == pytest.approx(0.5)  # 2 * 1 / (3 + 1)
    c = np.array([[0, 2], [2, 1]])
    d = np.array([[0, 2], [1, 1]])
    # class 1: 2 * 1 / (1 + 2) = 2/3, class 2: 2 * 1 / (2 + 1) = 2/3, class 3 absent
    assert mask_agreement(c, d, 4) == pytest.approx(2 / 3)
    assert mask_agreement(np.zeros((2, 2)), np.zeros((2, 2)), 3) == 1.0


def test_consistency_enters_the_objective() -> None:
    net = _tiny_net()
    data = _image_data()
    cfg = AdaptConfig(steps=2, lr=0.05, consistency=3.0, eval_patches=3)
    _, report = adapt_network(net, data, (16, 16), cfg)
    fixed = torch.from_numpy(sample_patches(data, (16, 16), 3, np.random.default_rng(1)))
    with torch.no_grad():
        logits = net(fixed)
        expected = prediction_entropy(logits) + 3.0 * flip_consistency(net, fixed, logits)
    assert report.entropy_before == pytest.approx(float(prediction_entropy(logits)), rel=1e-6)
    assert report.objective_before == pytest.approx(float(expected), rel=1e-6)
    assert report.objective_before > report.entropy_before and report.steps == 2


def test_agreement_rule_keeps_the_trained_network() -> None:
    net = _tiny_net()
    before = _state(net)
    data = _image_data()
    strict = AdaptConfig(
        steps=5, lr=2.0, min_agreement=1.0, reject_worse=False
    )  # large steps: labels change
    out, report = adapt_network(net, data, (16, 16), strict)
    assert report.steps == 5 and report.agreement < 1.0
    assert not report.kept and out is net
    assert report.rejected == f"agreement {report.agreement:.4f} < 1"
    assert f"(rejected: {report.rejected})" in report.line()
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    loose = AdaptConfig(steps=5, lr=2.0, min_agreement=0.0, reject_worse=False)
    out, report2 = adapt_network(net, data, (16, 16), loose)
    assert report2.kept and out is not net and report2.agreement == report.agreement
    tiny = AdaptConfig(
        steps=1, lr=1e-9, min_agreement=1.0, reject_worse=False
    )  # labels unchanged: kept
    out, report3 = adapt_network(net, data, (16, 16), tiny)
    assert report3.agreement == 1.0 and report3.kept and out is not net


def test_agreement_rule_config_bounds() -> None:
    with pytest.raises(InputError, match="agreement must be in"):
        AdaptConfig(min_agreement=1.5)
    with pytest.raises(InputError, match="consistency weight must be >= 0"):
        AdaptConfig(consistency=-1.0)
    with pytest.raises(InputError, match="evaluation patches must be >= 1"):
        AdaptConfig(eval_patches=0)
