"""Shared argument types: one duration rule for every sub-command."""

from __future__ import annotations

import argparse

import pytest

from medseg.cli.arguments import model_options, parse_duration, parse_model_option
from medseg.errors import InputError


def test_parse_duration_units() -> None:
    assert parse_duration("30m") == 1800 and parse_duration("1h30m") == 5400
    assert parse_duration("90s") == 90 and parse_duration("45") == 45
    assert parse_duration("1.5m") == 90 and parse_duration("1d") == 86400
    assert parse_duration(" 2H ") == 7200


@pytest.mark.parametrize("bad", ["", "abc", "0", "-5", "5x", "1h 30m", "soon", "nan", "inf"])
def test_parse_duration_refuses(bad: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="duration"):
        parse_duration(bad)


def test_parse_model_option_forms() -> None:
    assert parse_model_option("litemedsam-clicks:decoder_weights=/w/a.pt") == (
        "litemedsam-clicks", "decoder_weights", "/w/a.pt",
    )  # fmt: skip
    assert parse_model_option("tta=false") == (None, "tta", False)
    assert parse_model_option("m:steps=3") == ("m", "steps", 3)
    assert parse_model_option("m:scale=0.5") == ("m", "scale", 0.5)
    assert parse_model_option("note=") == (None, "note", "")


@pytest.mark.parametrize("bad", ["", "tta", "=1", "m:=1", "m:1x=2", "a b=1"])
def test_parse_model_option_refuses(bad: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"\[MODEL:\]KEY=VALUE"):
        parse_model_option(bad)


def test_model_options_per_model() -> None:
    items = [(None, "tta", False), ("b", "weights", "w.pt"), ("b", "tta", True)]
    assert model_options(items, ["a", "b"]) == {
        "a": {"tta": False},
        "b": {"tta": True, "weights": "w.pt"},
    }
    assert model_options(None, ["a"]) == {}
    with pytest.raises(InputError, match="'c', which is not a --model"):
        model_options([("c", "k", 1)], ["a", "b"])


def test_encoder_backend_choices_match_the_model() -> None:
    from medseg.cli.arguments import ENCODER_BACKENDS
    from medseg.models.litemedsam import BACKENDS

    assert ENCODER_BACKENDS == BACKENDS
