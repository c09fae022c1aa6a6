"""Argument types shared by the sub-commands (one rule each, one error wording)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

from medseg.errors import InputError

__all__ = ["ENCODER_BACKENDS", "model_options", "parse_duration", "parse_model_option"]

# The choices of every command's --backend; the same tuple as medseg.models.litemedsam.BACKENDS
# (repeated so that building the parser does not import the models; a test keeps them equal).
ENCODER_BACKENDS = ("auto", "torch", "onnx", "onnx-int8")

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


_OPTION = re.compile(r"(?:(?P<model>[^:=\s]+):)?(?P<key>[A-Za-z_]\w*)=(?P<value>.*)")


def _option_value(text: str) -> Any:
    """``true``/``false`` -> bool, an int or float literal -> number, else the string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_model_option(text: str) -> tuple[str | None, str, Any]:
    """``"[MODEL:]KEY=VALUE"`` -> ``(MODEL or None, KEY, value)``; an ``argparse`` type.

    ``litemedsam-clicks:decoder_weights=w.pt`` -> ``("litemedsam-clicks",
    "decoder_weights", "w.pt")``; ``tta=false`` -> ``(None, "tta", False)`` (every model).
    """
    match = _OPTION.fullmatch(str(text).strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"invalid model option {text!r} (form: [MODEL:]KEY=VALUE, e.g. tta=false or "
            "litemedsam-clicks:decoder_weights=weights.pt)"
        )
    return match["model"], match["key"], _option_value(match["value"])


def model_options(
    items: Sequence[tuple[str | None, str, Any]] | None, models: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per model name, the options of ``--model-option`` items (:func:`parse_model_option`);
    an item without MODEL applies to every model. A MODEL not among ``models`` is an
    ``InputError`` (a typo would otherwise be ignored silently)."""
    out: dict[str, dict[str, Any]] = {}
    for model, key, value in items or ():
        if model is not None and model not in models:
            raise InputError(
                f"--model-option names model {model!r}, which is not a --model "
                f"(models: {', '.join(models)})"
            )
        for name in models if model is None else (model,):
            out.setdefault(name, {})[key] = value
    return out
