"""The run-metadata block every benchmark result JSON starts with (version, settings, machine).

One helper so that results of different scripts stay comparable field by field.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path
from typing import Any

import medseg


def run_metadata(args: argparse.Namespace) -> dict[str, Any]:
    """``medseg_version``, ``settings`` (the parsed arguments, paths as strings) and
    ``machine`` (platform, CPU count, 1/5/15-minute load average at the time of the call)."""
    return {
        "medseg_version": medseg.__version__,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1_5_15": os.getloadavg(),
        },
    }
