"""Geometry, input encoding and network of ``medseg-interactive`` (shared by inference and
training, so both see exactly the same inputs).

Crop frame. A prediction runs on a square window of the image (:class:`CropWindow`: top-left
``(y0, x0)`` and ``side`` in image pixels, possibly reaching outside the image, where the
image is zero-filled) resampled to ``S x S`` network pixels (``S = 128`` by default). Pixel
centres map as ``net = (img - origin + 0.5) * S / side - 0.5`` (the ``align_corners=False``
convention): network pixel ``(i, j)`` covers image pixels ``origin + [i, i + 1) * side / S``.
Shrinking uses area averaging, growing bilinear interpolation; the network's logits are
resized back to ``side x side`` (bilinear) and pasted onto the image (:func:`paste_back`).

Network input: ``(9, S, S)`` float32, channels in the order of :data:`CHANNELS`:

0-2. image: RGB (gray repeated), standardised over the crop's in-image pixels
     (zero mean, unit standard deviation, floored at 0.05 of the ``[0, 1]`` range);
3.   box: 1 inside the box (inclusive pixel rectangle), else 0;
4-5. positive / negative clicks: disks of radius :data:`CLICK_RADIUS` network pixels;
6-7. positive / negative scribbles: scribble pixels dilated by one network pixel (3 x 3);
8.   previous mask: foreground probability ``sigmoid(logits)``, 0 when there is none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medseg.errors import InputError

__all__ = [
    "CHANNELS",
    "CLICK_RADIUS",
    "CropWindow",
    "crop_window",
    "crop_resize",
    "paste_back",
    "disk_map",
    "box_map",
    "scribble_map",
    "encode_inputs",
    "build_network",
]

CHANNELS = (
    "image_r", "image_g", "image_b", "box", "pos_clicks", "neg_clicks",
    "pos_scribbles", "neg_scribbles", "prev_mask",
)  # fmt: skip
CLICK_RADIUS = 3.0


@dataclass(frozen=True)
class CropWindow:
    """A square window ``[y0, y0 + side) x [x0, x0 + side)`` in image pixels."""

    y0: int
    x0: int
    side: int

    def to_net(self, points: np.ndarray, size: int) -> np.ndarray:
        """Image ``(x, y)`` pixel coordinates ``(P, 2)`` to network coordinates ``(P, 2)``."""
        p = np.asarray(points, np.float64).reshape(-1, 2)
        origin = np.array([self.x0, self.y0], np.float64)
        return (p - origin + 0.5) * (size / self.side) - 0.5

    def box_to_net(self, box: Sequence[float], size: int) -> np.ndarray:
        """Box ``(x0, y0, x1, y1)`` (inclusive pixel indices) to network coordinates."""
        b = np.asarray(box, np.float64).reshape(2, 2)
        return self.to_net(b, size).ravel()


def crop_window(
    extent: Sequence[float],
    shape: tuple[int, int],
    *,
    enlarge: float = 1.5,
    min_side: float = 24.0,
) -> CropWindow:
    """Square window around ``extent`` ``(x0, y0, x1, y1)`` (inclusive pixel indices).

    ``side = max(enlarge * max(x1 - x0 + 1, y1 - y0 + 1), min_side)``, at most
    ``max(H, W)``, centred on the extent, then shifted to lie inside the image along each
    axis where the image is at least ``side`` long (else centred on the image).
    """
    x0, y0, x1, y1 = (float(v) for v in extent)
    if x1 < x0 or y1 < y0:
        raise InputError(f"inverted extent {tuple(extent)}")
    h, w = int(shape[0]), int(shape[1])
    side = max(enlarge * max(x1 - x0 + 1.0, y1 - y0 + 1.0), float(min_side), 2.0)
    side_i = int(np.floor(min(side, float(max(h, w))) + 0.5))
    starts = []
    for lo, hi, n in ((y0, y1, h), (x0, x1, w)):
        centre = (lo + hi + 1.0) / 2.0
        start = int(np.floor(centre - side_i / 2.0 + 0.5))  # half-up rounding
        start = min(max(start, 0), n - side_i) if side_i <= n else (n - side_i) // 2
        starts.append(start)
    return CropWindow(starts[0], starts[1], side_i)


def _resize(t: Any, size: int) -> Any:
    """Resize a ``(B, C, h, w)`` square tensor to ``size``: area to shrink, bilinear to grow."""
    import torch.nn.functional as F

    if t.shape[-1] == size:
        return t
    if t.shape[-1] > size:
        return F.interpolate(t, size=(size, size), mode="area")
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)


def crop_resize(array: np.ndarray, window: CropWindow, size: int, fill: float = 0.0) -> np.ndarray:
    """Window of an ``(H, W)`` or ``(H, W, C)`` array resampled to ``(C, size, size)`` float32.

    Pixels of the window outside the image are ``fill``. A 2D array gives ``C = 1``.
    """
    import torch

    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise InputError(f"crop_resize needs an (H, W) or (H, W, C) array, got {arr.shape}")
    h, w, c = arr.shape
    s, y0, x0 = window.side, window.y0, window.x0
    out = np.full((s, s, c), fill, np.float32)
    ys, xs = max(y0, 0), max(x0, 0)
    ye, xe = min(y0 + s, h), min(x0 + s, w)
    if ye > ys and xe > xs:  # only the window is converted to float
        out[ys - y0 : ye - y0, xs - x0 : xe - x0] = arr[ys:ye, xs:xe]
    t = torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))[None]
    return _resize(t, size)[0].numpy()


def paste_back(
    net_logits: np.ndarray, window: CropWindow, shape: tuple[int, int], fill: float = -20.0
) -> np.ndarray:
    """Network logits ``(S, S)`` resized to the window and pasted on an ``(H, W)`` canvas.

    Pixels outside the window get ``fill`` (background). Returns float32 ``(H, W)``.
    """
    import torch
    import torch.nn.functional as F

    s = window.side
    t = torch.from_numpy(np.ascontiguousarray(net_logits, np.float32))[None, None]
    if t.shape[-1] != s:
        t = F.interpolate(t, size=(s, s), mode="bilinear", align_corners=False)
    crop = t[0, 0].numpy()
    h, w = int(shape[0]), int(shape[1])
    out = np.full((h, w), fill, np.float32)
    ys, xs = max(window.y0, 0), max(window.x0, 0)
    ye, xe = min(window.y0 + s, h), min(window.x0 + s, w)
    if ye > ys and xe > xs:
        out[ys:ye, xs:xe] = crop[ys - window.y0 : ye - window.y0, xs - window.x0 : xe - window.x0]
    return out


def disk_map(points: np.ndarray | None, size: int, radius: float = CLICK_RADIUS) -> np.ndarray:
    """``(size, size)`` float32 map: 1 within ``radius`` of any ``(x, y)`` point, else 0."""
    out = np.zeros((size, size), np.float32)
    if points is None or len(points) == 0:
        return out
    yy, xx = np.mgrid[0:size, 0:size]
    for x, y in np.asarray(points, np.float64).reshape(-1, 2):
        out[(xx - x) ** 2 + (yy - y) ** 2 <= radius**2] = 1.0
    return out


def box_map(box: np.ndarray | None, size: int) -> np.ndarray:
    """``(size, size)`` float32 map: 1 on pixels ``round(x0)..round(x1)`` x ``round(y0)..round(y1)``
    (clipped to the map) of a network-frame box, else 0; all zero for None."""
    out = np.zeros((size, size), np.float32)
    if box is None:
        return out
    x0, y0, x1, y1 = (round(float(v)) for v in box)
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, size - 1), min(y1, size - 1)
    if x1 >= x0 and y1 >= y0:
        out[y0 : y1 + 1, x0 : x1 + 1] = 1.0
    return out


def scribble_map(mask: np.ndarray | None, size: int) -> np.ndarray:
    """Scribble pixels ``(size, size)`` (any value > 0) dilated by one pixel (3 x 3), float32."""
    from scipy import ndimage

    if mask is None:
        return np.zeros((size, size), np.float32)
    m = np.asarray(mask) > 0
    return ndimage.binary_dilation(m, np.ones((3, 3), bool)).astype(np.float32)


def encode_inputs(
    image: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    box: np.ndarray | None = None,
    pos_points: np.ndarray | None = None,
    neg_points: np.ndarray | None = None,
    pos_scribble: np.ndarray | None = None,
    neg_scribble: np.ndarray | None = None,
    prev_prob: np.ndarray | None = None,
) -> np.ndarray:
    """Network input ``(9, S, S)`` float32 in the order of :data:`CHANNELS`.

    Args:
        image: crop ``(3, S, S)`` in ``[0, 1]`` (network frame).
        valid: ``(S, S)`` weights of in-image pixels for the standardisation (default all).
        box: network-frame box ``(x0, y0, x1, y1)``; points: ``(P, 2)`` ``(x, y)``.
        pos_scribble, neg_scribble: ``(S, S)`` scribble pixels (> 0), before dilation.
        prev_prob: ``(S, S)`` previous foreground probability.
    """
    img = np.asarray(image, np.float32)
    if img.ndim != 3 or img.shape[0] != 3 or img.shape[1] != img.shape[2]:
        raise InputError(f"image crop must be (3, S, S), got {img.shape}")
    size = img.shape[-1]
    wgt = np.ones((size, size), np.float32) if valid is None else np.asarray(valid, np.float32)
    total = float(wgt.sum()) * 3.0
    if total <= 0:
        mean, std = 0.0, 1.0
    else:
        mean = float((img * wgt).sum()) / total
        std = float(np.sqrt(((img - mean) ** 2 * wgt).sum() / total))
    out = np.empty((len(CHANNELS), size, size), np.float32)
    out[:3] = (img - mean) / max(std, 0.05) * (wgt > 0)
    out[3] = box_map(box, size)
    out[4] = disk_map(pos_points, size)
    out[5] = disk_map(neg_points, size)
    out[6] = scribble_map(pos_scribble, size)
    out[7] = scribble_map(neg_scribble, size)
    out[8] = 0.0 if prev_prob is None else np.asarray(prev_prob, np.float32)
    return out


def build_network(channels: Sequence[int] = (16, 32, 64, 128, 256), res_units: int = 1) -> Any:
    """MONAI 2D ``UNet`` (strides 2, instance norm): ``(B, 9, S, S)`` -> ``(B, 1, S, S)``
    logits; ``S`` must be divisible by ``2 ** (len(channels) - 1)``."""
    from monai.networks.nets import UNet

    return UNet(
        spatial_dims=2,
        in_channels=len(CHANNELS),
        out_channels=1,
        channels=tuple(int(c) for c in channels),
        strides=(2,) * (len(channels) - 1),
        num_res_units=int(res_units),
    )
