"""Network topology and cost model of a plan (nnU-Net's rules, CPU time budget).

``pool_and_conv`` re-implements nnU-Net's ``get_pool_and_conv_props``; ``estimate_cost``
models the FLOPs and activation memory of one DynUNet training step; ``choose_network``
shrinks the patch and the network width until a step fits the FLOP and memory allowances.
Spacing, patch and shapes are in the plan's (transposed) axis order.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["FILTER_LADDER", "pool_and_conv", "estimate_cost", "choose_network"]

FILTER_LADDER = (32, 16, 8)  # base widths tried in turn (nnU-Net uses 32)
_MAX_STAGES = {2: 7, 3: 6}
_CONTEXT_FLOOR = {2: 128, 3: 64}  # patch edge kept while a narrower network is available
_ABSOLUTE_FLOOR = {2: 32, 3: 16}


def pool_and_conv(
    spacing: tuple[float, ...], patch: tuple[int, ...], max_stages: int, min_feature_map: int = 4
) -> tuple[list[list[int]], list[list[int]], tuple[int, ...]]:
    """nnU-Net's topology rule (``get_pool_and_conv_props``), re-implemented.

    An axis is downsampled while its feature map stays >= ``2 * min_feature_map`` and its
    current spacing is less than twice the finest current spacing; a 3-wide kernel is used
    on an axis once its spacing is within 2x of the finest (else 1, for thick slices).

    Returns:
        ``(kernel_sizes, strides, patch)``: one kernel and one stride per stage (the first
        stride is all ones), and the patch padded up to a multiple of the total stride.
    """
    dim = len(spacing)
    cur_sp, cur_size = list(map(float, spacing)), list(map(float, patch))
    kernel = [1] * dim
    kernels, strides = [], [[1] * dim]
    while len(strides) < max_stages:
        valid = [i for i in range(dim) if cur_size[i] >= 2 * min_feature_map]
        if not valid:
            break
        finest = min(cur_sp[i] for i in valid)
        valid = [i for i in valid if cur_sp[i] / finest < 2]
        if len(valid) == 1 and cur_size[valid[0]] < 3 * min_feature_map:
            break
        kernel = [3 if k == 3 or cur_sp[d] / min(cur_sp) < 2 else 1 for d, k in enumerate(kernel)]
        kernels.append(list(kernel))
        stride = [2 if i in valid else 1 for i in range(dim)]
        for i in valid:
            cur_sp[i] *= 2
            cur_size[i] = math.ceil(cur_size[i] / 2)
        strides.append(stride)
    kernels.append(
        [3 if k == 3 or cur_sp[d] / min(cur_sp) < 2 else 1 for d, k in enumerate(kernel)]
    )
    factor = np.prod(np.array(strides), axis=0)
    padded = tuple(int(math.ceil(p / f) * f) for p, f in zip(patch, factor, strict=True))
    return kernels, strides, padded


def _filters(n_stages: int, base: int, dims: int) -> list[int]:
    cap = base * (10 if dims == 3 else 16)  # nnU-Net: 32 -> 320 (3D) / 512 (2D)
    return [min(base * 2**i, cap) for i in range(n_stages)]


def estimate_cost(
    patch: tuple[int, ...],
    kernels: list[list[int]],
    strides: list[list[int]],
    filters: list[int],
    in_channels: int,
    num_classes: int,
) -> tuple[float, float]:
    """FLOPs of one training step (forward + backward ~ 3x forward) and activation bytes,
    per sample, of a DynUNet with two convolutions per stage (a static estimate)."""
    size, cin = np.array(patch, float), in_channels
    flops = act = 0.0
    voxels = []
    for k, s, f in zip(kernels, strides, filters, strict=True):
        size = np.ceil(size / np.array(s))
        vox = float(np.prod(size))
        voxels.append(vox)
        flops += 2 * vox * np.prod(k) * (cin * f + f * f)
        act += vox * f * 6  # two convs, each with conv, norm and activation outputs
        cin = f
    for i in reversed(range(len(filters) - 1)):
        vox, f = voxels[i], filters[i]
        flops += 2 * vox * filters[i + 1] * f  # transposed conv, kernel == stride
        flops += 2 * vox * np.prod(kernels[i]) * (2 * f * f + f * f)
        act += vox * f * 9
    flops += 2 * voxels[0] * filters[0] * num_classes
    return 3.0 * flops, 4.0 * act


def _initial_patch(spacing: np.ndarray, median_shape: np.ndarray) -> np.ndarray:
    # nnU-Net v2: a 256^3 (3D) / 2048^2 (2D) voxel volume shaped by 1/spacing, clipped to data.
    inv = 1.0 / spacing
    volume = 256.0**3 if len(spacing) == 3 else 2048.0**2
    patch = np.round(inv * (volume / np.prod(inv)) ** (1 / len(spacing)))
    return np.minimum(patch, median_shape).astype(int)


def _network(spacing: np.ndarray, patch: tuple[int, ...], base: int, ctx: dict) -> dict[str, Any]:
    """Kernels, strides, padded patch, widths and cost (``flops``, ``mem``) of one patch."""
    kernels, strides, padded = pool_and_conv(tuple(spacing), patch, _MAX_STAGES[len(spacing)])
    filters = _filters(len(strides), base, len(spacing))
    flops, mem = estimate_cost(padded, kernels, strides, filters, *ctx["channels"])
    return dict(
        patch=padded, kernels=kernels, strides=strides, filters=filters, flops=flops, mem=mem
    )


def _fit_patch(
    spacing: np.ndarray, median: np.ndarray, base: int, floor: int, ctx: dict[str, Any]
) -> dict[str, Any] | None:
    """Shrink the patch (nnU-Net: the axis largest relative to the data first) until two
    samples per iteration fit the FLOP and memory allowances; None if the floor is hit."""
    patch = _initial_patch(spacing, median)
    lower = np.minimum(median, floor).astype(int)
    while True:
        net = _network(spacing, tuple(patch), base, ctx)
        if 2 * net["flops"] <= ctx["allowed_flops"] and 2 * net["mem"] <= ctx["memory"]:
            return net
        step = np.prod(np.array(net["strides"]), axis=0)
        ratio = np.where(patch - step >= lower, patch / median, -np.inf)
        if not np.isfinite(ratio).any():
            return None
        axis = int(np.argmax(ratio))
        patch[axis] -= step[axis]


def choose_network(spacing: np.ndarray, median: np.ndarray, ctx: dict[str, Any]) -> dict:
    """Patch, kernels, strides, widths and cost of the largest network that fits.

    ``ctx``: ``allowed_flops`` and ``memory`` per iteration, ``channels`` = (in, classes).
    The result's ``context`` is True when the patch kept the context floor (128 px in 2D,
    64 voxels in 3D, or the data size); ``fits`` is False when even the smallest network
    exceeds the allowance.
    """
    dims = len(spacing)
    for base in FILTER_LADDER:
        found = _fit_patch(spacing, median, base, _CONTEXT_FLOOR[dims], ctx)
        if found is not None:
            return {**found, "base": base, "fits": True, "context": True}
    found = _fit_patch(spacing, median, FILTER_LADDER[-1], _ABSOLUTE_FLOOR[dims], ctx)
    if found is not None:
        return {**found, "base": FILTER_LADDER[-1], "fits": True, "context": False}
    # Nothing fits: smallest network at the absolute floor; fewer iterations than wanted.
    patch = tuple(int(v) for v in np.minimum(median, _ABSOLUTE_FLOOR[dims]))
    net = _network(spacing, patch, FILTER_LADDER[-1], ctx)
    return {**net, "base": FILTER_LADDER[-1], "fits": False, "context": False}
