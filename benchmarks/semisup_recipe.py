"""Run the ``medseg`` CLI with another semi-supervised recipe (for choosing the defaults).

    python benchmarks/semisup_recipe.py '{"warmup_fraction": 0.2}' auto run DATA ...

The JSON object overrides fields of :data:`medseg.training.semisup.RECIPE` in this process
only; the rest of the line is passed to ``medseg``.
"""

from __future__ import annotations

import dataclasses
import json
import sys


def main() -> int:
    from medseg.cli.main import main as medseg_main
    from medseg.training import semisup

    semisup.RECIPE = dataclasses.replace(semisup.RECIPE, **json.loads(sys.argv[1]))
    return medseg_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
