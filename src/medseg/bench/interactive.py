"""``run_interactive``: the whole interactive benchmark, from dataset folders to report files.

Writes into ``out``: ``results.json``, ``results.csv``, ``dice_vs_interactions.png`` and one
``gallery_<model>_<protocol>.png`` per model and protocol (all atomically), and returns the
payload and the terminal table.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medseg.bench.data import discover
from medseg.bench.engine import PredictorFactory, plan, run_model
from medseg.bench.factory import predictor_factory
from medseg.bench.plots import gallery_filename, plot_curves, render_gallery
from medseg.bench.protocols import BenchConfig
from medseg.bench.report import build_results, format_table, write_csv, write_json
from medseg.errors import InputError

__all__ = ["BenchOutputs", "run_interactive"]

log = logging.getLogger(__name__)


@dataclass
class BenchOutputs:
    """What a benchmark produced: the ``results.json`` payload, the table and file paths."""

    payload: dict[str, Any]
    table: str
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def evaluated(self) -> int:
        """Targets with results, summed over models and protocols."""
        return sum(
            s["overall"]["n_targets"] for s in self.payload["summary"] if s["status"] == "ok"
        )


def run_interactive(
    data: Sequence[str | Path],
    config: BenchConfig,
    out: str | Path,
    *,
    factory: PredictorFactory | None = None,
    progress: bool = True,
    command: Sequence[str] | None = None,
) -> BenchOutputs:
    """Benchmark ``config.models`` with ``config.protocols`` on the datasets in ``data``.

    ``factory(name)`` builds a predictor (default: ``medseg.Predictor(name)``, with
    ``num_threads=config.threads`` where the model takes it and ``config.model_options``, see
    :func:`medseg.bench.factory.predictor_factory`). Raises
    ``InputError`` for a folder that is not a dataset or two datasets with the same name.
    """
    datasets = [discover(p, config.instances) for p in data]
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        raise InputError(f"two datasets have the same folder name: {names}")
    planned, skips = plan(datasets, config, progress)
    log.info(
        "%d cases with %d targets to run (%d cases/targets skipped)",
        len(planned), sum(len(p.specs) for p in planned), len(skips),
    )  # fmt: skip
    factory = factory or predictor_factory(config.threads, config.model_options)
    runs = [run_model(m, planned, config, factory, progress) for m in config.models]
    payload = build_results(datasets, planned, skips, runs, config, command)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    curves = plot_curves(payload["summary"], out / "dice_vs_interactions.png")
    if curves is not None:
        files["plot"] = curves
    for run in runs:
        for proto, items in run.gallery.items():
            title = f"{run.model} · {proto}: {len(items)} worst targets (lowest final Dice)"
            path = render_gallery(items, out / gallery_filename(run.model, proto), title)
            if path is not None:
                files[f"gallery:{run.model}:{proto}"] = path
    payload["files"] = {k: v.name for k, v in files.items()}
    files["json"] = write_json(payload, out / "results.json")
    files["csv"] = write_csv(payload, out / "results.csv")
    return BenchOutputs(payload, format_table(payload), files)
