"""Grad-CAM heat maps (Selvaraju et al. 2017) and overlays for a sample of images.

The map weighs the last convolutional stage's activations by their mean gradient of the
class score and is interpolated to the image: 2D ``(H, W)``, 3D ``(Z, Y, X)``, in ``[0, 1]``.
Overlays of 3D volumes show the middle axial slice (index Z // 2).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from medseg.classify.model import Classifier

__all__ = ["gradcam", "gradcam_overlays", "overlay_rgb"]

log = logging.getLogger(__name__)


def gradcam(clf: Classifier, images: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
    """Heat maps ``(N, *spatial)`` in ``[0, 1]`` for images ``(N, C, *spatial)`` in ``[0, 1]``.

    ``target``: class index per image (default: the predicted class).
    """
    import torch
    import torch.nn.functional as F

    from medseg.classify.networks import feature_layer

    if clf.config.model == "ensemble":  # the map of one member (EnsembleClassifier)
        return gradcam(clf.explained_member(), images, target)  # type: ignore[attr-defined]
    if clf.config.model == "tinyvit":
        from medseg.classify.feature_head import gradcam_features

        return gradcam_features(clf, images, target)  # type: ignore[arg-type]
    x = torch.from_numpy(np.ascontiguousarray(clf._as_array(images)))
    layer = feature_layer(clf.net.backbone)
    saved: dict[str, Any] = {}

    def hook(_module: Any, _inp: Any, out: Any) -> None:
        out.retain_grad()
        saved["act"] = out

    handle = layer.register_forward_hook(hook)
    try:
        clf.net.eval()
        with torch.enable_grad():
            logits = clf.net(x)
            idx = logits.argmax(1) if target is None else torch.as_tensor(target).long()
            logits.gather(1, idx[:, None]).sum().backward()
    finally:
        handle.remove()
        clf.net.zero_grad(set_to_none=True)
    act, grad = saved["act"], saved["act"].grad
    dims = tuple(range(2, act.ndim))
    cam = F.relu((grad.mean(dims, keepdim=True) * act).sum(1, keepdim=True)).detach()
    mode = "bilinear" if act.ndim == 4 else "trilinear"
    cam = F.interpolate(cam, size=x.shape[2:], mode=mode, align_corners=False)[:, 0].numpy()
    flat = cam.reshape(len(cam), -1)
    hi = flat.max(1).reshape((-1,) + (1,) * (cam.ndim - 1))
    return np.where(hi > 0, cam / np.where(hi > 0, hi, 1), 0).astype(np.float32)


def overlay_rgb(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """uint8 RGB ``(H, W, 3)``: image ``(C, H, W)`` in ``[0, 1]`` blended with a jet map."""
    from matplotlib import colormaps

    gray = image.mean(0) if image.shape[0] != 3 else None
    base = np.repeat(gray[..., None], 3, -1) if gray is not None else np.moveaxis(image, 0, -1)
    heat = colormaps["jet"](cam)[..., :3]
    return np.round(((1 - alpha) * base + alpha * heat).clip(0, 1) * 255).astype(np.uint8)


def gradcam_overlays(
    clf: Classifier,
    images: np.ndarray,
    labels: np.ndarray | None,
    out: str | Path,
    n: int = 16,
    seed: int = 0,
    upscale: int = 128,
) -> list[Path]:
    """Write ``gradcam_<i>.png`` (image | overlay side by side, ``upscale`` px each) for ``n``
    random images and a ``gradcam.json`` with true and predicted class; returns the PNGs."""
    import json

    from PIL import Image as PILImage

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pick = np.sort(np.random.default_rng(seed).permutation(len(images))[:n])
    sample = images[pick]
    cams = gradcam(clf, sample)
    pred = clf.predict(sample)
    written, rows = [], []
    for j, i in enumerate(pick):
        img, cam = sample[j], cams[j]
        if img.ndim == 4:  # (C, Z, Y, X): middle axial slice
            img, cam = img[:, img.shape[1] // 2], cam[cam.shape[0] // 2]
        left = overlay_rgb(img, np.zeros_like(cam), alpha=0.0)
        pair = np.concatenate([left, overlay_rgb(img, cam)], 1)
        size = (2 * upscale, upscale)
        path = out / f"gradcam_{int(i):05d}.png"
        PILImage.fromarray(pair).resize(size, PILImage.Resampling.NEAREST).save(path)
        written.append(path)
        true = None if labels is None else np.asarray(labels[i]).tolist()
        rows.append(
            {"index": int(i), "file": path.name, "true": true, "pred": np.asarray(pred[j]).tolist()}
        )
    (out / "gradcam.json").write_text(
        json.dumps({"classes": clf.classes, "images": rows}, indent=1)
    )
    log.info("wrote %d Grad-CAM overlays to %s", len(written), out)
    return written
