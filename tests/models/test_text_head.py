"""The text head (medseg.models.text) on LiteMedSAM's decoder: shapes, frozen transformer,
weights round trip through TextDecoder."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


@pytest.mark.slow
def test_text_head_round_trip(tmp_path):
    from medseg.errors import ModelError
    from medseg.models.registry import create_model
    from medseg.models.text import TRAINED_PREFIXES, WEIGHTS_FORMAT, TextDecoder, build_text_head

    lite = create_model("litemedsam", backend="torch")
    head = build_text_head(lite.net)
    trained = {n for n, p in head.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith(TRAINED_PREFIXES) for n in trained)
    assert not any(n.startswith("decoder.transformer") for n in trained)
    low, presence = head(torch.zeros(2, 256, 64, 64), lite._dense_pe, torch.zeros(2, 384))
    assert tuple(low.shape) == (2, 256, 256) and tuple(presence.shape) == (2,)
    state = {k: v.half() for k, v in head.state_dict().items() if k.startswith(TRAINED_PREFIXES)}
    path = tmp_path / "t.pt"
    torch.save({"format": WEIGHTS_FORMAT, "state": state, "phrases": ["kidney"],
                "vectors": torch.ones(1, 384).half()}, path)  # fmt: skip
    dec = TextDecoder(lite, path)
    assert np.array_equal(dec.vector(["kidney"]), np.ones(384, np.float32))
    emb = lite.encode(np.zeros((40, 30), np.float32))
    d = dec.decode(emb, np.zeros((3, 384), np.float32))
    assert d.logits.shape == (3, 1, 40, 30) and d.scores.shape == (3, 1)
    assert np.all((d.scores >= 0) & (d.scores <= 1))
    with pytest.raises(ModelError, match="not found"):
        TextDecoder(lite, tmp_path / "missing.pt")
