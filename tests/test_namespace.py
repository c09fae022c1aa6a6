"""The top-level ``medseg`` namespace: lazy attributes and subpackages, no torch on import.

Each check runs in a fresh interpreter, because this test process has imported most of
medseg (and torch) already.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_import_medseg_does_not_import_torch_or_subpackages():
    out = _run("import sys, medseg\nprint('torch' in sys.modules, 'medseg.io' in sys.modules)")
    assert out == "False False"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("medseg.io.Image.__name__", "Image"),
        ("medseg.io.load is medseg.load", "True"),
        ("medseg.metrics.dice.__name__", "dice"),
        ("medseg.errors.InputError.__name__", "InputError"),
        ("medseg.inference.__name__", "medseg.inference"),
        ("medseg.models.__name__", "medseg.models"),
        ("medseg.prompts.__name__", "medseg.prompts"),
        ("medseg.data.__name__", "medseg.data"),
        ("medseg.training.__name__", "medseg.training"),
        ("medseg.bench.__name__", "medseg.bench"),
    ],
)
def test_subpackages_are_lazy_attributes(expr, expected):
    out = _run(f"import sys, medseg\nprint({expr})\nprint('torch' in sys.modules)")
    assert out.splitlines() == [expected, "False"]


def test_unknown_attribute_and_dir():
    out = _run(
        "import medseg\n"
        "print('io' in dir(medseg), 'metrics' in dir(medseg), 'Image' in dir(medseg))\n"
        "try:\n    medseg.nope\nexcept AttributeError as e:\n    print(e)"
    )
    assert out.splitlines() == ["True True True", "module 'medseg' has no attribute 'nope'"]
