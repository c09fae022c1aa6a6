"""Interactive-segmentation benchmark: simulated users, metrics per interaction, reports.

>>> from medseg.bench import BenchConfig, make_protocol, run_interactive
>>> cfg = BenchConfig(models=("litemedsam",), protocols=(make_protocol("box+clicks"),))
>>> out = run_interactive(["../shared/data/kvasir_seg_sample"], cfg, "bench_out")
>>> print(out.table)

See ``docs/bench.md`` for the protocols, the metrics and the ``results.json`` schema.
"""

from __future__ import annotations

from medseg.bench.data import DatasetRef, Skip, Target, TargetSpec, discover
from medseg.bench.engine import ModelRun, default_factory, plan, run_model
from medseg.bench.factory import predictor_factory
from medseg.bench.interactive import BenchOutputs, run_interactive
from medseg.bench.protocols import PROTOCOL_NAMES, BenchConfig, Protocol, make_protocol
from medseg.bench.runner import StepResult, TargetResult, run_target, target_rng
from medseg.bench.summary import challenge_auc, curve_auc, noc, percentiles

__all__ = [
    "BenchConfig",
    "BenchOutputs",
    "DatasetRef",
    "ModelRun",
    "PROTOCOL_NAMES",
    "Protocol",
    "Skip",
    "StepResult",
    "Target",
    "TargetResult",
    "TargetSpec",
    "challenge_auc",
    "curve_auc",
    "default_factory",
    "discover",
    "make_protocol",
    "noc",
    "percentiles",
    "plan",
    "predictor_factory",
    "run_interactive",
    "run_model",
    "run_target",
    "target_rng",
]
