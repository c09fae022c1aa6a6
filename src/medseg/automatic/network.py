"""The network of a plan (MONAI ``DynUNet``) and a quick measurement of this machine's speed."""

from __future__ import annotations

import logging
import time
from typing import Any

from medseg.automatic.plan import Plan
from medseg.automatic.topology import estimate_cost, pool_and_conv

__all__ = ["build_network", "measure_flops_per_second"]

log = logging.getLogger(__name__)


def build_network(plan: Plan, *, deep_supervision: bool = True) -> Any:
    """A ``monai.networks.nets.DynUNet`` with the plan's kernels, strides and widths.

    Input ``(B, C, *patch)``; output ``(B, K, *patch)`` logits in eval mode and, in train
    mode with deep supervision, ``(B, 1 + heads, K, *patch)`` (MONAI upsamples every head to
    the full patch size).
    """
    from monai.networks.nets import DynUNet

    heads = plan.deep_supervision_heads if deep_supervision else 0
    return DynUNet(
        spatial_dims=plan.spatial_dims,
        in_channels=plan.in_channels,
        out_channels=plan.num_classes,
        kernel_size=[list(k) for k in plan.kernel_sizes],
        strides=[list(s) for s in plan.strides],
        upsample_kernel_size=[list(s) for s in plan.strides[1:]],
        filters=list(plan.filters),
        norm_name=("INSTANCE", {"affine": True}),
        act_name=("leakyrelu", {"inplace": True, "negative_slope": 0.01}),
        deep_supervision=heads > 0,
        deep_supr_num=max(1, heads),
        res_block=False,
    )


def measure_flops_per_second(repeats: int = 2) -> float:
    """Time training steps of a small 2D DynUNet and divide the modelled FLOPs by the time.

    Uses the current ``torch`` thread setting; takes about a second on a laptop CPU. The
    result calibrates :func:`medseg.automatic.plan.estimate_cost` for planning.
    """
    import torch
    from monai.networks.nets import DynUNet

    patch = (128, 128)
    kernels, strides, _ = pool_and_conv((1.0, 1.0), patch, max_stages=5)
    filters = [16 * 2**i for i in range(len(strides))]
    net = DynUNet(2, 1, 2, kernels, strides, strides[1:], filters=filters)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    x = torch.randn(2, 1, *patch)
    y = torch.randint(0, 2, (2, *patch))
    best = float("inf")
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i > 0:  # the first step includes one-off allocation costs
            best = min(best, time.perf_counter() - t0)
    flops, _ = estimate_cost(patch, kernels, strides, filters, 1, 2)
    rate = 2 * flops / best
    log.debug("measured %.2e FLOP/s (%.3f s per step)", rate, best)
    return rate
