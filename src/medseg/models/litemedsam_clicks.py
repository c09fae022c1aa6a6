"""``litemedsam-clicks``: LiteMedSAM with its prompt encoder and mask decoder fine-tuned for
correction clicks and the previous mask (the image encoder, and so the embedding, is
LiteMedSAM's own, unchanged).

LiteMedSAM's point and mask inputs were never trained (its masks get worse with every
click, :mod:`medseg.models.litemedsam`). These weights were fine-tuned on cached LiteMedSAM
embeddings of the ``"train"`` group of :data:`medseg.training.foundation.split.LEAVE_OUT_GROUPS`
with SAM-style simulated interactions (first a jittered box or one click, then clicks at the
error, the previous low-resolution logits fed back as ``mask_input``;
:mod:`medseg.training.foundation.trainer`). No weights are bundled: the
runs so far do not beat the default model on the left-out datasets (docs/benchmarks.md), so
the model loads a weights file the user trains with ``benchmarks/train_foundation_clicks.py``
(fp16, the ``prompt_encoder.*`` and ``mask_decoder.*`` entries of the state dict), given as
``decoder_weights=PATH``; the recipe of the measured run is in
``benchmarks/results/litemedsam_clicks_weights.json``.

Prompts: a box, clicks (``points`` with labels 1 = foreground, 0 = background), a box plus
clicks, each optionally with ``mask_input`` (the previous result: logits or a mask at the
image's resolution). A ``mask_input`` alone is rejected (never trained), as are
``multimask`` and scribbles. Preprocessing and coordinate mapping are LiteMedSAM's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import ModelError, PromptError
from medseg.models.base import Decoded
from medseg.models.litemedsam import LiteMedSAM, LiteMedSAMConfig, LiteMedSAMEmbedding
from medseg.models.registry import build_config, register_model
from medseg.prompts.types import PromptSet

__all__ = ["LiteMedSAMClicksConfig", "LiteMedSAMClicks", "litemedsam_clicks", "TRAINED_PREFIXES"]

TRAINED_PREFIXES = ("prompt_encoder.", "mask_decoder.")


@dataclass(frozen=True)
class LiteMedSAMClicksConfig(LiteMedSAMConfig):
    """:class:`LiteMedSAMConfig` plus ``decoder_weights``: the path of the fine-tuned
    prompt-encoder and mask-decoder weights (required; none are bundled)."""

    decoder_weights: str | None = None


def _check_prompts(prompts: PromptSet, shape: tuple[int, int]) -> None:
    """``PromptError`` for prompts this model cannot use on an image of ``shape`` (H, W)."""
    if getattr(prompts, "scribbles", None) is not None:
        raise PromptError("litemedsam-clicks takes no scribbles: use clicks (points)")
    if prompts.boxes is None and prompts.points is None:
        raise PromptError(
            "litemedsam-clicks needs a box or clicks; mask_input alone was never trained"
        )
    n = prompts.num_objects
    if prompts.boxes is not None:
        b = np.asarray(prompts.boxes, np.float64)
        if b.shape != (n, 4) or not np.all(np.isfinite(b)):
            raise PromptError(f"boxes must be (N, 4) finite numbers, got shape {b.shape}")
        if np.any(b[:, 2] <= b[:, 0]) or np.any(b[:, 3] <= b[:, 1]):
            raise PromptError("each box needs x0 < x1 and y0 < y1")
    if prompts.points is not None:
        p = np.asarray(prompts.points, np.float64)
        lab = np.asarray(prompts.point_labels)
        if p.ndim != 3 or p.shape[0] != n or p.shape[2] != 2 or p.shape[1] < 1:
            raise PromptError(f"points must be (N, P >= 1, 2), got shape {p.shape}")
        if lab.shape != p.shape[:2] or not np.all(np.isin(lab, (0, 1))):
            raise PromptError("point_labels must be (N, P) of 1 (foreground) or 0 (background)")
        h, w = shape
        x, y = p[..., 0], p[..., 1]
        if not np.all(np.isfinite(p)) or np.any((x < 0) | (x >= w) | (y < 0) | (y >= h)):
            raise PromptError(f"every point must lie on the image: 0 <= x < {w}, 0 <= y < {h}")
    if prompts.mask_input is not None:
        m = np.asarray(prompts.mask_input)
        if m.shape != (n, *shape):
            raise PromptError(f"mask_input must be (N, H, W) = {(n, *shape)}, got {m.shape}")
        if not np.all(np.isfinite(m)):
            raise PromptError("mask_input contains NaN or inf")


class LiteMedSAMClicks(LiteMedSAM):
    """LiteMedSAM with fine-tuned prompt encoder + mask decoder (see the module docstring)."""

    name = "litemedsam-clicks"
    prompt_kinds = frozenset({"box", "points", "mask"})
    num_multimask_outputs = 0
    refines_previous_mask = True

    def __init__(self, config: LiteMedSAMClicksConfig | None = None) -> None:
        import torch

        config = config or LiteMedSAMClicksConfig()
        if not config.decoder_weights:
            raise ModelError(
                "litemedsam-clicks has no bundled weights (it does not beat the default model "
                "yet, docs/benchmarks.md): train them with benchmarks/train_foundation_clicks.py "
                "and pass decoder_weights=PATH"
            )
        path = Path(config.decoder_weights)
        if not path.is_file():
            raise ModelError(f"litemedsam-clicks decoder weights not found: {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch.load raises many types (pickle, zip, key errors)
            raise ModelError(f"cannot load decoder weights {path}: {exc}") from exc
        super().__init__(config)
        expected = {k for k in self.net.state_dict() if k.startswith(TRAINED_PREFIXES)}
        if not isinstance(state, dict) or set(state) != expected:
            raise ModelError(
                f"{path} is not a litemedsam-clicks weights file: it must hold exactly the "
                "prompt_encoder.* and mask_decoder.* entries of LiteMedSAM's state dict"
            )
        self.net.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
        self.net.eval()
        self._dense_pe = self.net.prompt_encoder.get_dense_pe().detach()
        self.decoder_weights_path = str(path)
        self.decoder_weights_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()

    def _onnx_encoder(self) -> Any:
        """LiteMedSAM's own ONNX encoder export (the image encoder is unchanged)."""
        from medseg.models.onnx_export import OnnxEncoder, encoder_onnx_path, export_encoder

        path = encoder_onnx_path(self.config.cache_dir, "litemedsam", self.weights_sha256)
        if not path.is_file():
            size = self.config.image_size
            export_encoder(self.net.image_encoder, path, (1, 3, size, size))
        return OnnxEncoder(path, self.config.num_threads)

    def decode(
        self, embedding: LiteMedSAMEmbedding, prompts: PromptSet, *, multimask: bool = False
    ) -> Decoded:
        """Masks ``(N, 1, H, W)`` for ``N`` objects (box and/or clicks, optional mask_input)."""
        if multimask:
            raise PromptError("litemedsam-clicks has no multimask output")
        _check_prompts(prompts, embedding.original_size)
        return super().decode(embedding, prompts)

    def config_dict(self) -> dict[str, Any]:
        return {**super().config_dict(), "decoder_weights_sha256": self.decoder_weights_sha256}


@register_model("litemedsam-clicks")
def litemedsam_clicks(**overrides: Any) -> LiteMedSAMClicks:
    """``litemedsam-clicks`` with :class:`LiteMedSAMClicksConfig` defaults replaced."""
    return LiteMedSAMClicks(build_config("litemedsam-clicks", LiteMedSAMClicksConfig, overrides))
