"""Shared argument types: one duration rule for every sub-command."""

from __future__ import annotations

import argparse

import pytest

from medseg.cli.arguments import parse_duration


def test_parse_duration_units() -> None:
    assert parse_duration("30m") == 1800 and parse_duration("1h30m") == 5400
    assert parse_duration("90s") == 90 and parse_duration("45") == 45
    assert parse_duration("1.5m") == 90 and parse_duration("1d") == 86400
    assert parse_duration(" 2H ") == 7200


@pytest.mark.parametrize("bad", ["", "abc", "0", "-5", "5x", "1h 30m", "soon", "nan", "inf"])
def test_parse_duration_refuses(bad: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="duration"):
        parse_duration(bad)
