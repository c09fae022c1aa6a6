"""Weight averaging of medseg-interactive weight files (``medseg train soup``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medseg.errors import InputError
from medseg.training.interactive.soup import average_weights
from medseg.training.interactive.trainer import WEIGHTS_FORMAT


def _weights(path: Path, value: float, iterations: int, net=None) -> Path:
    import torch

    torch.save({
        "format": WEIGHTS_FORMAT,
        "net": net or {"size": 32, "channels": [4, 8], "res_units": 1},
        "state_dict": {"w": torch.full((2, 2), value).half(),
                       "count": torch.tensor([iterations], dtype=torch.long)},
        "iterations": iterations,
        "train_seconds": 10.0 * iterations,
    }, path)  # fmt: skip
    return path


def test_average_is_the_weighted_mean(tmp_path):
    import torch

    a = _weights(tmp_path / "a.pt", 1.0, 100)
    b = _weights(tmp_path / "b.pt", 3.0, 300)
    out = average_weights([a, b], tmp_path / "soup.pt")
    payload = torch.load(out, weights_only=True)
    assert payload["format"] == WEIGHTS_FORMAT and payload["iterations"] == 300
    torch.testing.assert_close(payload["state_dict"]["w"].float(), torch.full((2, 2), 2.0))
    assert payload["state_dict"]["w"].dtype == torch.float16
    assert payload["state_dict"]["count"].tolist() == [100]  # integer tensors: the first file's
    assert [s["mix"] for s in payload["averaged_from"]] == [0.5, 0.5]
    assert len(payload["averaged_from"][0]["sha256"]) == 64
    mixed = torch.load(average_weights([a, b], tmp_path / "m.pt", [3, 1]), weights_only=True)
    torch.testing.assert_close(mixed["state_dict"]["w"].float(), torch.full((2, 2), 1.5))


def test_bad_inputs_raise(tmp_path):
    a = _weights(tmp_path / "a.pt", 1.0, 1)
    other = _weights(tmp_path / "o.pt", 1.0, 1, net={"size": 64, "channels": [4], "res_units": 1})
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    with pytest.raises(InputError, match="at least two"):
        average_weights([a], tmp_path / "x.pt")
    with pytest.raises(InputError, match="another network"):
        average_weights([a, other], tmp_path / "x.pt")
    with pytest.raises(InputError, match="cannot read"):
        average_weights([a, tmp_path / "junk.pt"], tmp_path / "x.pt")
    with pytest.raises(InputError, match="no weights file"):
        average_weights([a, tmp_path / "missing.pt"], tmp_path / "x.pt")
    with pytest.raises(InputError, match="mix"):
        average_weights([a, a], tmp_path / "x.pt", [1.0, -1.0])
    assert not (tmp_path / "x.pt").exists()


def test_cli_soup(tmp_path):
    import torch

    from medseg.cli.main import main

    a = _weights(tmp_path / "a.pt", 0.0, 1)
    b = _weights(tmp_path / "b.pt", 4.0, 2)
    out = tmp_path / "soup.pt"
    assert main(["train", "soup", str(a), str(b), "--out", str(out), "--mix", "1", "3"]) == 0
    w = torch.load(out, weights_only=True)["state_dict"]["w"].float()
    torch.testing.assert_close(w, torch.full((2, 2), 3.0))
