"""``medseg`` entry point: argument parsing, logging set-up and error reporting."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from medseg._version import __version__
from medseg.errors import MedsegError

__all__ = ["main", "build_parser"]

log = logging.getLogger("medseg")


def _command_modules() -> list[ModuleType]:
    from medseg.cli import commands

    mods = []
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            mods.append(importlib.import_module(f"medseg.cli.commands.{info.name}"))
    return mods


def build_parser() -> argparse.ArgumentParser:
    """The full parser with one subparser per command module."""
    parser = argparse.ArgumentParser(
        prog="medseg",
        description="Segment anything in medical images on a laptop CPU.",
    )
    parser.add_argument("--version", action="version", version=f"medseg {__version__}")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="count", default=0, help="more output")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Log to stderr: WARNING with ``-q``, INFO by default, DEBUG with ``-v``."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbose else "%(message)s")
    )
    root = logging.getLogger("medseg")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except MedsegError as exc:
        log.error("medseg %s: error: %s", args.command, exc)
        if args.verbose:
            log.exception("traceback")
        return 2
    except KeyboardInterrupt:
        log.error("medseg %s: interrupted", args.command)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
