"""A stand-in for trained ``litemedsam-clicks`` weights (none are bundled): LiteMedSAM's own
prompt encoder and mask decoder with small seeded noise added, saved fp16 as the trainer
writes them, so tests exercise the loading path and a decoder that is not LiteMedSAM's."""

from __future__ import annotations

from pathlib import Path


def write_clicks_weights(path: Path, seed: int = 0, scale: float = 0.002) -> Path:
    """Write the weights file to ``path`` and return it."""
    import torch

    from medseg.models import create_model
    from medseg.models.litemedsam_clicks import TRAINED_PREFIXES

    net = create_model("litemedsam", backend="torch").net
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in net.state_dict().items():
        if key.startswith(TRAINED_PREFIXES):
            noisy = (
                value + scale * torch.randn(value.shape, generator=g)
                if value.is_floating_point()
                else value
            )
            state[key] = noisy.half() if noisy.is_floating_point() else noisy
    torch.save(state, path)
    return path
