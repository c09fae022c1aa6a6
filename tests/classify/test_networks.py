"""``networks._lite0``: the EfficientNet-Lite0 stem for gray and RGB input."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from medseg.classify.networks import _adapt_stem, _lite0  # noqa: E402


def test_lite0_gray_stem_averages_the_rgb_filters() -> None:
    torch.manual_seed(0)
    rgb = _lite0(3, 5, pretrained=False)
    assert tuple(rgb._conv_stem.weight.shape) == (32, 3, 3, 3)
    assert tuple(rgb._fc.weight.shape) == (5, 1280)
    w = rgb._conv_stem.weight.data.clone()
    _adapt_stem(rgb, 1)
    assert tuple(rgb._conv_stem.weight.shape) == (32, 1, 3, 3)
    assert torch.equal(rgb._conv_stem.weight.data, w.mean(1, keepdim=True))
    _adapt_stem(rgb, 1)  # 1 != 3: built again from the (now gray) filters, unchanged values
    assert torch.equal(rgb._conv_stem.weight.data, w.mean(1, keepdim=True))
    two = _lite0(2, 3, pretrained=False)
    assert tuple(two._conv_stem.weight.shape) == (32, 2, 3, 3)
    w2 = two._conv_stem.weight.data
    assert torch.equal(w2[:, 0], w2[:, 1])
    out = two.eval()(torch.zeros(1, 2, 64, 64))
    assert tuple(out.shape) == (1, 3)
