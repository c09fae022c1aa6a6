"""``medseg-text``: a text-conditioned mask decoder on LiteMedSAM's image embedding.

A phrase's all-MiniLM-L6-v2 embedding ``t`` (384-d, :mod:`medseg.prompts.text_encoder`)
conditions a copy of LiteMedSAM's mask decoder in two places:

- **prompt tokens**: ``tokens(t)`` = MLP 384 -> 512 -> ``K x 256`` gives ``K`` (4) sparse
  prompt embeddings, in place of the two box-corner tokens of a box prompt;
- **dense prompt**: ``dense(t)`` = Linear 384 -> 256, added to LiteMedSAM's "no mask" dense
  embedding at every one of the 64 x 64 positions.

The decoder's two-way transformer keeps LiteMedSAM's bundled weights (frozen); the mask and
IoU tokens, upscaling, hypernetwork MLPs and IoU head are fine-tuned, and the IoU head's
first output is trained as a **presence** logit (is the named target in the image?), so
``sigmoid`` of it is the score and an absent target gets a low score and an empty mask.
The weights file (``medseg/assets/medseg_text.pt``, float16) holds only the trained
tensors plus the MiniLM embeddings of every vocabulary phrase, so predicting never loads
the sentence encoder for a known phrase. Training: ``benchmarks/text_train.py``.

The image embedding is LiteMedSAM's (``LiteMedSAMEmbedding``), so the head works on the
embedding the ``litemedsam`` and ``litemedsam+interactive`` models already cache.
"""

from __future__ import annotations

import copy
import logging
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import ModelError
from medseg.models.base import Decoded

__all__ = [
    "TEXT_ASSET",
    "TRAINED_PREFIXES",
    "build_text_head",
    "TextDecoder",
    "text_weights_path",
]

log = logging.getLogger(__name__)

TEXT_ASSET = "medseg_text.pt"
WEIGHTS_FORMAT = "medseg-text-head"
NUM_TOKENS = 4
EMBED = 384
# Parameters trained (and stored); the rest of the mask decoder stays LiteMedSAM's.
TRAINED_PREFIXES = ("tokens.", "dense.", "decoder.iou_token", "decoder.mask_tokens",
                    "decoder.output_upscaling", "decoder.output_hypernetworks_mlps",
                    "decoder.iou_prediction_head")  # fmt: skip


def text_weights_path() -> Path:
    """The bundled weights file (may not exist in a checkout without trained weights)."""
    return Path(str(resources.files("medseg").joinpath("assets", TEXT_ASSET)))


def build_text_head(lite_net: Any) -> Any:
    """The text head (a ``torch.nn.Module``) around a copy of ``lite_net``'s mask decoder.

    ``forward(features (B, 256, 64, 64), image_pe (1, 256, 64, 64), text (B, 384))`` returns
    ``(low_res (B, 256, 256) logits in the padded model frame, presence logits (B,))``.
    """
    import torch
    from torch import nn

    class TextHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.decoder = copy.deepcopy(lite_net.mask_decoder)
            self.register_buffer(
                "no_mask", lite_net.prompt_encoder.no_mask_embed.weight.detach().clone()
            )
            self.tokens = nn.Sequential(
                nn.Linear(EMBED, 512), nn.GELU(), nn.Linear(512, NUM_TOKENS * 256)
            )
            self.dense = nn.Linear(EMBED, 256)
            nn.init.zeros_(self.dense.weight)
            nn.init.zeros_(self.dense.bias)

        def forward(self, features: Any, image_pe: Any, text: Any) -> tuple[Any, Any]:
            b = text.shape[0]
            sparse = self.tokens(text).view(b, NUM_TOKENS, 256)
            dense = (self.no_mask + self.dense(text))[:, :, None, None]
            dense = dense.expand(b, 256, *features.shape[-2:])
            if features.shape[0] != b:
                features = features.expand(b, -1, -1, -1)
            masks, iou = self._predict(features, image_pe, sparse, dense)
            return masks[:, 0], iou[:, 0]

        def _predict(self, src: Any, pe: Any, sparse: Any, dense: Any) -> tuple[Any, Any]:
            d = self.decoder
            out = torch.cat([d.iou_token.weight, d.mask_tokens.weight], dim=0)
            tokens = torch.cat((out.unsqueeze(0).expand(sparse.shape[0], -1, -1), sparse), 1)
            src = src + dense
            pos = pe.expand(src.shape[0], -1, -1, -1)
            b, c, h, w = src.shape
            hs, src = d.transformer(src, pos, tokens)
            src = src.transpose(1, 2).reshape(b, c, h, w)
            up = d.output_upscaling(src)
            hyper = d.output_hypernetworks_mlps[0](hs[:, 1, :])[:, None]
            masks = (hyper @ up.flatten(2)).view(b, 1, *up.shape[-2:])
            return masks, d.iou_prediction_head(hs[:, 0, :])

    head = TextHead()
    for name, p in head.named_parameters():
        p.requires_grad_(name.startswith(TRAINED_PREFIXES))
    return head


class TextDecoder:
    """Decode LiteMedSAM embeddings with a phrase vector (see the module docstring).

    Args:
        lite: the :class:`medseg.models.litemedsam.LiteMedSAM` whose embeddings are decoded.
        weights: a weights file; None = the bundled ``medseg_text.pt``.
    """

    def __init__(self, lite: Any, weights: str | Path | None = None) -> None:
        import torch

        path = Path(weights) if weights is not None else text_weights_path()
        if not path.is_file():
            raise ModelError(
                f"text model weights not found: {path} (train them with benchmarks/text_train.py)"
            )
        try:
            doc = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # torch.load raises many types
            raise ModelError(f"cannot load text model weights {path}: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != WEIGHTS_FORMAT:
            raise ModelError(f"{path} is not a medseg text model ({WEIGHTS_FORMAT})")
        self.lite = lite
        self.head = build_text_head(lite.net)
        state = {k: v.float() for k, v in doc["state"].items()}
        missing = [k for k in state if k not in dict(self.head.named_parameters())]
        if missing:
            raise ModelError(f"text model weights {path} do not fit: {missing[:3]}")
        self.head.load_state_dict(state, strict=False)
        self.head.eval()
        self.info: dict[str, Any] = dict(doc.get("info", {}))
        self.threshold = float(doc.get("presence_threshold", 0.5))
        self.phrases = {p: i for i, p in enumerate(doc.get("phrases", []))}
        self.vectors = np.asarray(doc["vectors"].float().numpy(), np.float32)
        self.path = path

    def vector(self, phrases: list[str]) -> np.ndarray:
        """``(384,)`` MiniLM vector of the first phrase in ``phrases`` found in the weights
        file's table; if none is, of ``phrases[0]`` computed with the sentence encoder."""
        for p in phrases:
            if p in self.phrases:
                return self.vectors[self.phrases[p]]
        from medseg.prompts.text_encoder import embed_phrases

        return embed_phrases(phrases[:1])[0]

    def decode(self, embedding: Any, vectors: np.ndarray) -> Decoded:
        """Masks for ``N`` phrase vectors ``(N, 384)`` on one LiteMedSAM embedding:
        logits ``(N, 1, H, W)`` at the image's size, scores ``(N, 1)`` = presence probability."""
        import torch
        import torch.nn.functional as F

        text = torch.as_tensor(np.asarray(vectors, np.float32))
        with torch.inference_mode():
            low, presence = self.head(embedding.features, self.lite._dense_pe, text)
            h, w = embedding.resized_size
            logits = F.interpolate(
                low[:, None, :h, :w], size=embedding.original_size, mode="bilinear",
                align_corners=False,
            )  # fmt: skip
        scores = torch.sigmoid(presence).numpy().astype(np.float32)[:, None]
        return Decoded(logits=logits.numpy().astype(np.float32), scores=scores)
