"""The official MedMNIST-C corruption families (Di Salvo et al. 2024, PyPI ``medmnistc`` 0.1.0).

We re-implement them here with NumPy, SciPy, scikit-image and Pillow instead of importing
``medmnistc``: that package pins ``scikit-image==0.23.2`` and ``medmnist==3.0.1`` and needs
ImageMagick through ``wand`` (motion blur) and OpenCV, none of which medseg can depend on.
``benchmarks/classify_medmnistc_check.py`` compares the two on RetinaMNIST.

Every family follows ``medmnistc/corruptions/*.py``: it works on 8-bit RGB slices
``(S, H, W, 3)`` (our float input in ``[0, 1]`` is rounded to ``uint8`` first, as MedMNIST files
are ``uint8``) with the same float steps and the same truncation back to ``uint8``. Pixelate,
JPEG, brightness and contrast call Pillow exactly as ``medmnistc`` does; defocus, Gaussian and
zoom blur, gamma and saturation repeat its OpenCV / torchvision / SciPy / scikit-image
arithmetic; motion blur repeats ImageMagick's ``MotionBlurImage`` (a one-sided Gaussian streak
at a random angle in [-45, 45] degrees). Parameters are in pixels of the image as given:
``medmnistc`` calibrated them on 224 px images, so on a 28 px file the blurs are as many pixels
wide as ``medmnistc`` applied to that file would make them, not 8 times narrower.

The families that need ``medmnistc``'s assets or OpenCV text rendering (``stain_deposit``,
``bubble``, ``black_corner``, ``characters``) are left out of the tables.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np

from medseg.errors import InputError

Family = Callable[[np.ndarray, Any, np.random.Generator], np.ndarray]

_LUMA = (19595, 38470, 7471)  # Pillow's RGB -> L weights (ITU-R 601-2, 16-bit fixed point)


def _as_float(u8: np.ndarray) -> np.ndarray:
    return np.asarray(u8) / 255.0


def _to_u8(f: np.ndarray) -> np.ndarray:
    """``medmnistc``'s ``(np.clip(img, 0, 1) * 255).astype(np.uint8)``: truncation."""
    return (np.clip(f, 0, 1) * 255).astype(np.uint8)


def _pil_map(stack: np.ndarray, op: Callable[[Any], Any]) -> np.ndarray:
    """Apply a Pillow ``Image -> Image`` function to each RGB slice of ``(S, H, W, 3)``."""
    from PIL import Image

    return np.stack([np.asarray(op(Image.fromarray(s)), dtype=np.uint8) for s in stack])


def gaussian_noise(stack: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive normal noise of std ``sigma`` (units of the [0, 1] range)."""
    f = _as_float(stack)
    return _to_u8(f + rng.normal(scale=sigma, size=f.shape))


def speckle_noise(stack: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative noise ``x + x * N(0, sigma)``."""
    f = _as_float(stack)
    return _to_u8(f + f * rng.normal(scale=sigma, size=f.shape))


def shot_noise(stack: np.ndarray, photons: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson noise ``Poisson(x * photons) / photons`` (fewer photons: more noise)."""
    f = _as_float(stack)
    return _to_u8(rng.poisson(f * photons) / photons)


def impulse_noise(stack: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper: each value (per channel) becomes 0 or 1 with probability ``amount``,
    salt and pepper equally likely (scikit-image ``random_noise(mode="s&p")``)."""
    out = _as_float(stack).copy()
    flipped = rng.random(out.shape) < amount
    salted = rng.random(out.shape) < 0.5
    out[flipped & salted] = 1.0
    out[flipped & ~salted] = 0.0
    return _to_u8(out)


def _disk(radius: float, alias_blur: float) -> np.ndarray:
    """``medmnistc``'s defocus kernel: a normalised disk, then a 3x3 (5x5 past radius 8)
    Gaussian of sigma ``alias_blur`` (OpenCV ``GaussianBlur``, reflect-101 border)."""
    from scipy.ndimage import correlate1d

    grid = np.arange(-8, 8 + 1) if radius <= 8 else np.arange(-radius, radius + 1)
    k = 3 if radius <= 8 else 5
    xx, yy = np.meshgrid(grid, grid)
    disk = np.array(xx**2 + yy**2 <= radius**2, dtype=np.float32)
    disk /= disk.sum()
    t = np.arange(k) - (k - 1) / 2
    g = np.exp(-(t**2) / (2 * alias_blur**2))
    g = (g / g.sum()).astype(np.float32)
    disk = correlate1d(disk, g, axis=0, mode="mirror")
    return correlate1d(disk, g, axis=1, mode="mirror")


def defocus_blur(stack: np.ndarray, param: tuple, rng: np.random.Generator) -> np.ndarray:
    """Disk blur, ``param = (radius px, alias sigma)`` (OpenCV ``filter2D``, reflect-101)."""
    from scipy.ndimage import correlate

    kernel = _disk(*param).astype(np.float64)
    f = _as_float(stack)
    return _to_u8(correlate(f, kernel[None, :, :, None], mode="mirror"))


def _motion_offsets(width: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """ImageMagick's sample offsets ``(dy, dx)`` along the streak, ``width`` of them."""
    i = np.arange(width)
    rad = np.deg2rad(angle)
    px, py = width * np.sin(rad), width * np.cos(rad)
    h = np.hypot(px, py)
    return np.ceil(i * px / h - 0.5).astype(int), np.ceil(i * py / h - 0.5).astype(int)


def motion_kernel(radius: float, sigma: float) -> np.ndarray:
    """ImageMagick's one-sided motion-blur weights: ``2 * ceil(radius) + 1`` taps
    ``exp(-i**2 / (2 sigma**2))``, normalised (``GetMotionBlurKernel``)."""
    width = int(2 * np.ceil(radius) + 1) if radius > 1e-12 else 3
    s = max(abs(sigma), 1e-12)
    k = np.exp(-(np.arange(width) ** 2) / (2 * s * s))
    return k / k.sum()


def motion_blur_at(stack: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """Motion blur of ``(S, H, W, C)`` uint8 at ``angle`` degrees (0: along +x, 90: +y),
    edge pixels repeated outside the image, rounded at 16 bits as ImageMagick Q16 does, then
    ``// 257`` to 8 bits (matches ``medmnistc`` exactly on RetinaMNIST)."""
    k = motion_kernel(radius, sigma)
    dy, dx = _motion_offsets(len(k), angle)
    _, h, w, _ = stack.shape
    q16 = stack.astype(np.float64) * 257.0
    acc = np.zeros_like(q16)
    rows, cols = np.arange(h), np.arange(w)
    for wt, oy, ox in zip(k, dy, dx, strict=True):
        r = np.clip(rows + oy, 0, h - 1)
        c = np.clip(cols + ox, 0, w - 1)
        acc += wt * q16[:, r][:, :, c]
    q = np.clip(np.floor(acc + 0.5), 0, 65535)
    return (q // 257).astype(np.uint8)  # what medmnistc reads back from ImageMagick's PNG


def motion_blur(stack: np.ndarray, param: tuple, rng: np.random.Generator) -> np.ndarray:
    """``param = (radius, sigma)``; one angle uniform in [-45, 45] degrees per call."""
    return motion_blur_at(stack, *param, angle=float(rng.uniform(-45, 45)))


def gaussian_blur(stack: np.ndarray, ksize: int, rng: np.random.Generator) -> np.ndarray:
    """torchvision ``gaussian_blur(kernel_size=ksize)``: sigma ``0.3 ((k - 1) / 2 - 1) + 0.8``,
    reflect padding, float32, rounded."""
    from scipy.ndimage import correlate1d

    sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8
    t = np.linspace(-(ksize - 1) * 0.5, (ksize - 1) * 0.5, ksize)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    g = (g / g.sum()).astype(np.float32)
    f = stack.astype(np.float32)
    f = correlate1d(correlate1d(f, g, axis=1, mode="mirror"), g, axis=2, mode="mirror")
    return np.clip(np.round(f), 0, 255).astype(np.uint8)


def zoom_blur(stack: np.ndarray, factors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mean of the image and its centre crops zoomed by each factor (bilinear, SciPy)."""
    from scipy.ndimage import zoom

    img = (stack / 255.0).astype(np.float32)
    h, w = img.shape[1:3]
    out = np.zeros_like(img)
    for z in factors:
        ch, cw = int(np.ceil(h / z)), int(np.ceil(w / z))
        top, left = (h - ch) // 2, (w - cw) // 2
        for s in range(len(img)):
            zoomed = zoom(img[s, top : top + ch, left : left + cw], (z, z, 1), order=1)
            t, lft = (zoomed.shape[0] - h) // 2, (zoomed.shape[1] - w) // 2
            out[s] += zoomed[t : t + h, lft : lft + w]
    return _to_u8((img + out) / (len(factors) + 1))


def brightness(stack: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Pillow ``ImageEnhance.Brightness(factor)`` (blend with black)."""
    from PIL import ImageEnhance

    return _pil_map(stack, lambda im: ImageEnhance.Brightness(im).enhance(factor))


def contrast(stack: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Pillow ``ImageEnhance.Contrast(factor)`` (blend with the mean grey of each slice)."""
    from PIL import ImageEnhance

    return _pil_map(stack, lambda im: ImageEnhance.Contrast(im).enhance(factor))


def gamma(stack: np.ndarray, g: float, rng: np.random.Generator) -> np.ndarray:
    """torchvision ``adjust_gamma(g)`` on 8 bits: ``int(255.999 * (v / 255) ** g)``."""
    lut = np.array([int((255 + 1 - 1e-3) * pow(v / 255.0, g)) for v in range(256)], np.uint8)
    return lut[stack]


def saturate(stack: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """HSV saturation ``+ amount`` (scikit-image colour conversions)."""
    from skimage.color import hsv2rgb, rgb2hsv

    hsv = rgb2hsv(_as_float(stack))
    hsv[..., 1] = np.clip(hsv[..., 1] + amount, 0, 1)
    return _to_u8(hsv2rgb(hsv))


def pixelate(stack: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Pillow BOX resize to ``int(size * factor)`` and BOX resize back."""
    from PIL import Image

    def op(im: Any) -> Any:
        w, h = im.size
        small = im.resize((int(w * factor), int(h * factor)), Image.BOX)
        return small.resize((w, h), Image.BOX)

    return _pil_map(stack, op)


def jpeg_compression(stack: np.ndarray, quality: int, rng: np.random.Generator) -> np.ndarray:
    """Pillow JPEG round trip at ``quality``."""
    from PIL import Image

    def op(im: Any) -> Any:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=int(quality))
        return Image.open(io.BytesIO(buf.getvalue()))

    return _pil_map(stack, op)


FAMILIES: dict[str, Family] = {
    "gaussian_noise": gaussian_noise,
    "speckle_noise": speckle_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "defocus_blur": defocus_blur,
    "motion_blur": motion_blur,
    "gaussian_blur": gaussian_blur,
    "zoom_blur": zoom_blur,
    "brightness": brightness,
    "contrast": contrast,
    "gamma": gamma,
    "saturate": saturate,
    "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
}


def rgb_to_l(rgb: np.ndarray) -> np.ndarray:
    """Pillow's ``convert("L")`` of ``(..., 3)`` uint8: ``(19595 R + 38470 G + 7471 B +
    0x8000) >> 16``."""
    r, g, b = (rgb[..., i].astype(np.uint32) * w for i, w in enumerate(_LUMA))
    return ((r + g + b + 0x8000) >> 16).astype(np.uint8)


def apply_family(x: np.ndarray, family: str, param: Any, rng: np.random.Generator) -> np.ndarray:
    """Apply ``family`` with its raw ``param`` to one float image in [0, 1].

    Args:
        x: 2D ``(C, H, W)`` or 3D ``(C, Z, Y, X)``; 3D volumes are corrupted slice by slice
            along Z with the same parameters (one motion-blur angle per volume, noise drawn
            independently per voxel).
        family: a key of :data:`FAMILIES`.
        param: that family's parameter for one severity (see ``CORRUPTIONS_DS``).
        rng: random draws.

    Returns:
        float32 array of the shape of ``x`` in [0, 1], multiples of 1/255. ``C == 3`` is RGB;
        ``C == 1`` is grey replicated to RGB, corrupted, then converted back with Pillow's
        luma weights (what ``medmnistc`` does for grey datasets); other ``C``: each channel
        on its own as grey.
    """
    if family not in FAMILIES:
        raise InputError(f"unknown MedMNIST-C family {family!r}; choose from {sorted(FAMILIES)}")
    fn = FAMILIES[family]
    u8 = np.round(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)
    stack = np.moveaxis(u8, 0, -1)
    if stack.ndim == 3:  # 2D: one slice
        stack = stack[None]
    if stack.shape[-1] == 3:
        out = fn(stack, param, rng)
    else:
        out = np.stack(
            [
                rgb_to_l(fn(np.repeat(stack[..., c : c + 1], 3, -1), param, rng))
                for c in range(stack.shape[-1])
            ],
            -1,
        )
    out = np.moveaxis(out, -1, 0)
    return (out.reshape(x.shape) / np.float32(255.0)).astype(np.float32)
