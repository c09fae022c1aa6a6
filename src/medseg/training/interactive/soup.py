"""Weight averaging ("model soup", Wortsman et al., ICML 2022) of ``medseg-interactive``
weight files: ``medseg train soup A.pt B.pt --out C.pt``.

Averaging the weights of runs that share a starting point (a fine-tuning run and the
weights it started from, or checkpoints of one run) often generalises better than either
file alone; the benchmark in ``docs/benchmarks.md`` measures whether it does.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

from medseg.errors import InputError
from medseg.models.interactive import WEIGHTS_FORMAT, read_weights

__all__ = ["average_weights"]

log = logging.getLogger(__name__)


def average_weights(
    paths: Sequence[str | Path], out: str | Path, mix: Sequence[float] | None = None
) -> Path:
    """Write the weighted mean of the weight files ``paths`` to ``out`` (atomically).

    Args:
        paths: two or more ``medseg-interactive`` weights files of one network config.
        out: the averaged weights file (float16, like the inputs).
        mix: one non-negative weight per file (normalised to sum 1); default uniform.

    Raises ``InputError`` for fewer than two files, a file that is not a weights file,
    different network configs or tensor names, or a bad ``mix``.
    """
    import torch

    from medseg.io import atomic_path

    files = [Path(p) for p in paths]
    if len(files) < 2:
        raise InputError("give at least two weights files to average")
    mix = [1.0] * len(files) if mix is None else [float(m) for m in mix]
    if len(mix) != len(files) or min(mix) < 0 or sum(mix) <= 0:
        raise InputError(f"--mix needs {len(files)} non-negative weights with a positive sum")
    payloads = [read_weights(p) for p in files]
    first = payloads[0]
    for path, p in zip(files[1:], payloads[1:], strict=True):
        if p["net"] != first["net"] or p["state_dict"].keys() != first["state_dict"].keys():
            raise InputError(f"{path} has another network ({p['net']}) than {files[0]}")
    total = sum(mix)
    state = {}
    for key, ref in first["state_dict"].items():
        if not ref.is_floating_point():
            state[key] = ref
            continue
        parts = zip(mix, payloads, strict=True)
        acc = sum(m / total * p["state_dict"][key].float() for m, p in parts)
        state[key] = acc.half()
    sources = [{"path": str(f), "sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
                "iterations": int(p.get("iterations", 0)), "mix": m / total}
               for f, p, m in zip(files, payloads, mix, strict=True)]  # fmt: skip
    payload = {
        "format": WEIGHTS_FORMAT,
        "net": first["net"],
        "state_dict": state,
        "iterations": max(s["iterations"] for s in sources),
        "train_seconds": max(float(p.get("train_seconds", 0.0)) for p in payloads),
        "averaged_from": sources,
    }
    with atomic_path(out) as tmp:
        torch.save(payload, tmp)
    log.info("averaged %d weight files into %s", len(files), out)
    return Path(out)
