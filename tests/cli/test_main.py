from __future__ import annotations

import subprocess
import sys

import pytest

from medseg import __version__
from medseg.cli.main import build_parser, main


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_every_subcommand_has_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert "demo" in sub.choices
    for name, p in sub.choices.items():
        assert p.format_help().startswith("usage: medseg " + name)


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: medseg" in capsys.readouterr().out


def test_module_entry_point_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "medseg", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"medseg {__version__}"
