"""Argument types shared by the sub-commands (one rule each, one error wording)."""

from __future__ import annotations

import argparse
import re

__all__ = ["parse_duration"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(text: str) -> float:
    """``"2h"``, ``"90m"``, ``"1h30m"``, ``"45s"``, ``"1.5d"`` or plain seconds (``"3600"``)
    -> seconds (> 0); an ``argparse`` type, so a bad value is one usage-error line."""
    t = str(text).strip().lower()
    try:
        seconds = float(t)
    except ValueError:
        parts = _PART.findall(t)
        if not parts or "".join(a + b for a, b in parts) != t:
            raise argparse.ArgumentTypeError(
                f"invalid duration {text!r} (examples: 2h, 90m, 1h30m, 45s, 3600)"
            ) from None
        seconds = sum(float(a) * _UNITS[b] for a, b in parts)
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"duration must be positive and finite, got {text!r}")
    return seconds
