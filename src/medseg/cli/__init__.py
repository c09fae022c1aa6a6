"""The ``medseg`` command line: thin entry points over the typed Python API."""

from medseg.cli.main import main

__all__ = ["main"]
