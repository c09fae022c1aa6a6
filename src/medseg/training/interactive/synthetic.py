"""Synthetic targets and augmentation for ``medseg-interactive`` training, in the network frame.

Synthetic targets teach "segment what I point at" rather than a fixed set of organs:

- superpixels of the (real) image crop: one SLIC or Felzenszwalb region (skimage), sometimes
  merged with a neighbouring one;
- random shapes drawn onto the crop with a changed intensity and texture: ellipses and
  polygons (blobs) and branching curvilinear trees of 1-4 pixel thickness (vessel-like).

Augmentation (:func:`augment`): flips, 90-degree rotations, a small rotation/scaling
(scipy ``affine_transform``), gamma, contrast, brightness, inversion, grey conversion,
channel permutation, blur and Gaussian noise. All functions take a ``numpy.random.Generator``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["superpixel_target", "shape_target", "augment"]


def superpixel_target(image: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """One superpixel region of a ``(3, S, S)`` crop in ``[0, 1]``: ``(S, S)`` bool or None
    when no region covers 0.5-60 % of the crop."""
    from scipy import ndimage
    from skimage.segmentation import felzenszwalb, slic

    img = np.ascontiguousarray(image.transpose(1, 2, 0))
    if rng.random() < 0.5:
        seg = slic(img, n_segments=int(rng.integers(6, 60)), compactness=float(rng.uniform(3, 30)),
                   channel_axis=-1, start_label=1)  # fmt: skip
    else:
        seg = felzenszwalb(img, scale=float(rng.uniform(50, 600)), sigma=0.8, min_size=30) + 1
    counts = np.bincount(seg.ravel())
    n = seg.size
    ok = np.flatnonzero((counts >= 0.005 * n) & (counts <= 0.6 * n))
    if ok.size == 0:
        return None
    mask = seg == int(ok[rng.integers(ok.size)])
    if rng.random() < 0.3:  # merge with a neighbour
        ring = ndimage.binary_dilation(mask, np.ones((3, 3), bool)) & ~mask
        neighbours = np.unique(seg[ring])
        if neighbours.size:
            mask |= seg == int(neighbours[rng.integers(neighbours.size)])
    return mask


def _blob(size: int, rng: np.random.Generator) -> np.ndarray:
    from skimage.draw import ellipse, polygon

    mask = np.zeros((size, size), bool)
    cy, cx = rng.uniform(0.2, 0.8, 2) * size
    if rng.random() < 0.5:
        ry, rx = rng.uniform(0.03, 0.3, 2) * size
        rr, cc = ellipse(cy, cx, ry, rx, shape=mask.shape, rotation=rng.uniform(0, np.pi))
    else:
        k = int(rng.integers(3, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = rng.uniform(0.05, 0.3, k) * size
        rr, cc = polygon(cy + rad * np.sin(ang), cx + rad * np.cos(ang), shape=mask.shape)
    mask[rr, cc] = True
    return mask


def _tree(size: int, rng: np.random.Generator) -> np.ndarray:
    """A branching random-walk tree, dilated to 1-4 pixels thickness."""
    from scipy import ndimage
    from skimage.draw import line

    mask = np.zeros((size, size), bool)
    tips = [(rng.uniform(0.2, 0.8) * size, rng.uniform(0.2, 0.8) * size, rng.uniform(0, 2 * np.pi))]
    for _ in range(int(rng.integers(1, 6))):
        y, x, a = tips[int(rng.integers(len(tips)))]
        a = a + rng.uniform(-0.9, 0.9)
        for _ in range(int(rng.integers(3, 10))):
            a += rng.normal(0, 0.3)
            step = rng.uniform(3, 10)
            ny, nx = y + step * np.sin(a), x + step * np.cos(a)
            ny, nx = float(np.clip(ny, 0, size - 1)), float(np.clip(nx, 0, size - 1))
            rr, cc = line(int(y), int(x), int(ny), int(nx))
            mask[rr, cc] = True
            y, x = ny, nx
            tips.append((y, x, a))
    width = int(rng.integers(0, 2))
    return ndimage.binary_dilation(mask, np.ones((3, 3), bool), iterations=width) if width else mask


def shape_target(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw a random shape onto a ``(3, S, S)`` crop: ``(new image, mask (S, S) bool)``."""
    from scipy import ndimage

    size = image.shape[-1]
    mask = _tree(size, rng) if rng.random() < 0.35 else _blob(size, rng)
    if not mask.any():
        mask[size // 2, size // 2] = True
    alpha = ndimage.gaussian_filter(mask.astype(np.float32), rng.uniform(0.3, 1.2))
    shift = rng.choice([-1.0, 1.0]) * rng.uniform(0.12, 0.45)
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), rng.uniform(0.5, 3))
    texture = texture / (texture.std() + 1e-6) * rng.uniform(0.0, 0.08)
    colour = rng.uniform(0.6, 1.4, 3)[:, None, None] if rng.random() < 0.5 else 1.0
    out = image + alpha[None] * (shift * colour + texture[None])
    return np.clip(out, 0, 1).astype(np.float32), mask


def _geometry(image, gt, valid, rng):
    from scipy import ndimage

    k = int(rng.integers(4))
    image, gt, valid = (np.rot90(a, k, axes=(-2, -1)) for a in (image, gt, valid))
    if rng.random() < 0.5:
        image, gt, valid = image[..., ::-1], gt[..., ::-1], valid[..., ::-1]
    if rng.random() < 0.4:
        size = gt.shape[-1]
        ang, scale = rng.uniform(-0.4, 0.4), rng.uniform(0.85, 1.2)
        c, s = np.cos(ang) / scale, np.sin(ang) / scale
        mat = np.array([[c, -s], [s, c]])
        centre = np.array([size / 2 - 0.5] * 2)
        off = centre - mat @ centre
        image = np.stack([ndimage.affine_transform(ch, mat, off, order=1) for ch in image])
        gt = ndimage.affine_transform(gt.astype(np.float32), mat, off, order=1) > 0.5
        valid = ndimage.affine_transform(valid.astype(np.float32), mat, off, order=0)
    return (np.ascontiguousarray(a) for a in (image, gt, valid))


def _intensity(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from scipy import ndimage

    img = image.astype(np.float32)
    if rng.random() < 0.2:
        img = np.repeat(img.mean(axis=0, keepdims=True), 3, axis=0)
    elif rng.random() < 0.2:
        img = img[rng.permutation(3)]
    if rng.random() < 0.1:
        img = 1.0 - img
    if rng.random() < 0.5:
        img = np.clip(img, 0, 1) ** float(np.exp(rng.uniform(-0.6, 0.6)))
    if rng.random() < 0.6:
        img = (img - 0.5) * rng.uniform(0.5, 1.6) + 0.5 + rng.uniform(-0.2, 0.2)
    if rng.random() < 0.25:
        sigma = rng.uniform(0.3, 1.5)
        img = np.stack([ndimage.gaussian_filter(ch, sigma) for ch in img])
    if rng.random() < 0.4:
        img = img + rng.normal(0, rng.uniform(0.005, 0.08), img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


def augment(
    image: np.ndarray, gt: np.ndarray, valid: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Augment a crop ``(3, S, S)``, its target ``(S, S)`` bool and in-image map ``(S, S)``."""
    image, gt, valid = _geometry(image, gt, valid, rng)
    return _intensity(image, rng), gt.astype(bool), valid.astype(np.float32)
