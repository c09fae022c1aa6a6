"""Every option of every ``medseg`` command has help text, and every ``--help`` works."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from medseg.cli.main import build_parser, main


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """``(command path, parser)`` for ``parser`` and all its sub-parsers, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))


_PARSERS = list(_walk(build_parser(), ()))
_COMMANDS = [path for path, _ in _PARSERS if path]


def test_walk_finds_nested_commands() -> None:
    assert ("auto", "run") in _COMMANDS
    assert ("train", "interactive") in _COMMANDS
    assert ("segment",) in _COMMANDS


def test_every_action_has_help() -> None:
    missing = []
    for path, parser in _PARSERS:
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            # a sub-command group is described by its commands' help lines
            helps = {c.dest: c.help for c in getattr(action, "_choices_actions", [])}
            pairs = (
                [(n, helps.get(n)) for n in action.choices]
                if isinstance(action, argparse._SubParsersAction)
                else [("/".join(action.option_strings) or action.dest, action.help)]
            )
            for name, text in pairs:
                if text is None or text == argparse.SUPPRESS or not text.strip():
                    missing.append(f"medseg {' '.join(path)}: {name}")
    assert missing == []


@pytest.mark.parametrize("path", _COMMANDS, ids=" ".join)
def test_help_exits_zero(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*path, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: medseg {' '.join(path)}")


def test_auto_run_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["auto", "run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "nnU-Net raw dataset folder (with dataset.json)" in out
    assert "contiguous runs of sorted case ids" in out
    assert "(default random)" in out
    assert "(default 0)" in out
