"""Segmentation metrics: Dice, IoU, HD95, ASSD and NSD per case and class, plus summaries.

``dice``/``iou`` are plain numpy; the surface metrics import torch/MONAI only when called,
so ``import medseg.metrics`` stays cheap. Definitions, units and the empty-mask rules are in
``docs/metrics.md``.
"""

from __future__ import annotations

from medseg.metrics.accumulate import MetricAccumulator, summarize
from medseg.metrics.case import EMPTY_MASK_RULES, METRICS, distance_cap_mm, evaluate_case
from medseg.metrics.overlap import dice, iou
from medseg.metrics.surface import assd, hd95, nsd, surface_metrics

__all__ = [
    "EMPTY_MASK_RULES",
    "METRICS",
    "MetricAccumulator",
    "assd",
    "dice",
    "distance_cap_mm",
    "evaluate_case",
    "hd95",
    "iou",
    "nsd",
    "summarize",
    "surface_metrics",
]
