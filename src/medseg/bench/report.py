"""``results.json``, ``results.csv`` and the terminal table (schema in ``docs/bench.md``)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medseg.bench.data import DatasetRef, Skip
from medseg.bench.engine import CaseRun, ModelRun, PlannedCase
from medseg.bench.protocols import BenchConfig, Protocol
from medseg.bench.summary import challenge_block, metric_block, percentiles
from medseg.io.atomic import atomic_path

__all__ = [
    "SCHEMA_VERSION",
    "CSV_COLUMNS",
    "run_skips",
    "build_results",
    "write_json",
    "write_csv",
    "format_table",
]

SCHEMA_VERSION = 1
CSV_COLUMNS = (
    "model", "protocol", "dataset", "case", "target", "label", "label_name", "component",
    "slice_index", "area_px", "status", "reason", "step", "kind", "dice", "iou", "nsd",
    "latency_s", "prompt",
)  # fmt: skip


def run_skips(runs: Sequence[ModelRun], planned: Sequence[PlannedCase]) -> list[Skip]:
    """Skip records a model run adds: failed model (every case), failed cases, target errors,
    unsupported protocols."""
    out: list[Skip] = []
    for run in runs:
        if run.status != "ok":
            out += [
                Skip(
                    pc.dataset.name, pc.case.case_id, f"model failed: {run.reason}", model=run.model
                )
                for pc in planned
            ]
            continue
        for proto, reason in run.unsupported.items():
            out.append(Skip("*", "*", f"protocol unsupported: {reason}", None, run.model, proto))
        for case in run.cases:
            if case.status != "ok":
                out.append(Skip(case.dataset, case.case_id, str(case.reason), model=run.model))
            for proto, results in case.results.items():
                out += [
                    Skip(
                        case.dataset,
                        case.case_id,
                        str(r.reason),
                        r.spec.target_id,
                        run.model,
                        proto,
                    )
                    for r in results
                    if r.status != "ok"
                ]
    return out


def _ok_targets(cases: Sequence[CaseRun], proto: str, dataset: str | None = None) -> list[dict]:
    """Targets evaluated without error, as ``{"steps": [step dicts]}``."""
    return [
        {"steps": [s.to_dict() for s in r.steps]}
        for case in cases
        if dataset is None or case.dataset == dataset
        for r in case.results.get(proto, [])
        if r.status == "ok" and r.steps
    ]


def _status(run: ModelRun, proto: Protocol) -> tuple[str, str | None]:
    if run.status != "ok":
        return run.status, run.reason
    if proto.name in run.unsupported:
        return "unsupported", run.unsupported[proto.name]
    return "ok", None


def _timing(run: ModelRun, proto: str) -> dict[str, Any]:
    latencies = [s.latency_s for c in run.cases for r in c.results.get(proto, []) for s in r.steps]
    runtimes = [c.runtime_s(proto) for c in run.cases if c.status == "ok"]
    return {
        "model_load_s": run.load_s,
        "set_image_s": percentiles([t for c in run.cases for t in c.set_image_s]),
        "latency_s": percentiles(latencies),
        "case_runtime_s": percentiles(runtimes),
    }


def _summary(run: ModelRun, proto: Protocol, config: BenchConfig, datasets: list[str]) -> dict:
    status, reason = _status(run, proto)
    out: dict[str, Any] = {"model": run.model, "protocol": proto.name, "status": status,
                           "reason": reason}  # fmt: skip
    if status != "ok":
        return out
    n = proto.max_interactions
    noc_args = (config.noc_thresholds, config.noc_metric, config.noc_cap)
    out["overall"] = metric_block(_ok_targets(run.cases, proto.name), n, *noc_args)
    out["per_dataset"] = {
        ds: metric_block(_ok_targets(run.cases, proto.name, ds), n, *noc_args) for ds in datasets
    }
    out["n_errors"] = sum(
        1 for c in run.cases for r in c.results.get(proto.name, []) if r.status != "ok"
    )
    if proto.challenge:
        cases = [{"targets": _ok_targets([c], proto.name), "runtime_s": c.runtime_s(proto.name)}
                 for c in run.cases]  # fmt: skip
        out[proto.challenge] = challenge_block(cases, proto.challenge, n)
    out["timing"] = _timing(run, proto.name)
    out["memory"] = dict(run.memory)
    return out


def _runs(runs: Sequence[ModelRun], config: BenchConfig) -> list[dict]:
    out = []
    for run in runs:
        for proto in config.protocols:
            cases = [
                {
                    "dataset": c.dataset,
                    "case": c.case_id,
                    "status": c.status,
                    "reason": c.reason,
                    "set_image_s": c.set_image_s,
                    "runtime_s": c.runtime_s(proto.name),
                    "targets": [r.to_dict() for r in c.results.get(proto.name, [])],
                }
                for c in run.cases
            ]
            out.append({"model": run.model, "protocol": proto.name, "cases": cases})
    return out


def build_results(
    datasets: Sequence[DatasetRef],
    planned: Sequence[PlannedCase],
    skips: Sequence[Skip],
    runs: Sequence[ModelRun],
    config: BenchConfig,
    command: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The ``results.json`` payload (see ``docs/bench.md`` for the schema)."""
    from medseg._version import __version__

    names = [d.name for d in datasets]
    ds_info = []
    for d in datasets:
        mine = [pc for pc in planned if pc.dataset.name == d.name]
        ds_info.append({
            "name": d.name, "path": str(d.root), "layout": d.layout, "instances": d.instances,
            "modality": d.modality, "num_cases": len(d.cases), "num_cases_evaluated": len(mine),
            "num_targets": sum(len(pc.specs) for pc in mine),
        })  # fmt: skip
    all_skips = [*skips, *run_skips(runs, planned)]
    return {
        "schema_version": SCHEMA_VERSION,
        "medseg_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": list(command) if command is not None else None,
        "config": config.to_dict(),
        "datasets": ds_info,
        "skipped": [s.to_dict() for s in all_skips],
        "summary": [_summary(r, p, config, names) for r in runs for p in config.protocols],
        "runs": _runs(runs, config),
    }


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, tuples -> lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def write_json(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` as indented JSON, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_clean(payload), indent=1, allow_nan=False) + "\n")
    return path


def _csv_rows(payload: dict[str, Any]):
    for run in payload["runs"]:
        for case in run["cases"]:
            for t in case["targets"]:
                base = {
                    "model": run["model"], "protocol": run["protocol"], "dataset": case["dataset"],
                    "case": case["case"], "target": t["target_id"], "label": t["label"],
                    "label_name": t["label_name"], "component": t["component"],
                    "slice_index": t["slice_index"], "area_px": t["area"], "status": t["status"],
                    "reason": t["reason"],
                }  # fmt: skip
                if not t["steps"]:
                    yield base
                for s in t["steps"]:
                    prompt = json.dumps(s["prompt"], separators=(",", ":"))
                    yield {**base, **{k: s[k] for k in ("step", "kind", "dice", "iou", "nsd")},
                           "latency_s": s["latency_s"], "prompt": prompt}  # fmt: skip
    for skip in payload["skipped"]:
        yield {
            "model": skip.get("model"), "protocol": skip.get("protocol"),
            "dataset": skip["dataset"], "case": skip["case_id"], "target": skip.get("target_id"),
            "status": "skipped", "reason": skip["reason"],
        }  # fmt: skip


def write_csv(payload: dict[str, Any], path: str | Path) -> Path:
    """One row per target and interaction (and one per skipped case/target), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in _csv_rows(payload):
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in CSV_COLUMNS})
    return path


def _fmt(value: Any, spec: str = ".3f", scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


def _row(s: dict, ds: str, block: dict) -> list[str]:
    noc = block.get("noc", {})
    nocs = [f"{_fmt(v['mean'], '.1f')} ({v['never_reached']})" for v in noc.values()]
    timing, memory = s["timing"], s["memory"]
    lat = timing["latency_s"]
    return [
        s["model"], s["protocol"], ds, str(block["n_targets"]), _fmt(block.get("dice_first")),
        _fmt(block.get("dice_final")), _fmt(block.get("nsd_final")), _fmt(block.get("dice_auc")),
        _fmt(block.get("worse_steps"), ".0f", 100), *nocs,
        _fmt(timing["set_image_s"]["p50"], ".3f"),
        f"{_fmt(lat['p50'], '.0f', 1000)}/{_fmt(lat['p95'], '.0f', 1000)}",
        _fmt(memory.get("peak_rss_mb"), ".0f"),
    ]  # fmt: skip


def format_table(payload: dict[str, Any], max_skips: int = 30) -> str:
    """A plain-text summary table (overall and per dataset), challenge lines and skips."""
    thresholds = payload["config"]["noc_thresholds"]
    metric = payload["config"]["noc_metric"]
    header = ["model", "protocol", "dataset", "n", "Dice@1", "Dice end", "NSD end", "AUC",
              "worse %", *[f"NoC@{round(t * 100)} (miss)" for t in thresholds], "set_img s",
              "lat ms p50/p95", "RSS MB"]  # fmt: skip
    rows: list[list[str]] = []
    notes: list[str] = []
    for s in payload["summary"]:
        if s["status"] != "ok":
            notes.append(f"{s['model']} / {s['protocol']}: {s['status']}: {s['reason']}")
            continue
        if not s["overall"]["n_targets"]:
            notes.append(f"{s['model']} / {s['protocol']}: no target evaluated")
            continue
        rows.append(_row(s, "overall", s["overall"]))
        if len(s["per_dataset"]) > 1:
            rows += [_row(s, ds, b) for ds, b in s["per_dataset"].items() if b["n_targets"]]
        for key in ("cvpr24", "cvpr25"):
            if key in s:
                vals = ", ".join(f"{k} {_fmt(v)}" for k, v in s[key].items() if k != "n_cases")
                notes.append(f"{s['model']} / {key} ({s[key]['n_cases']} cases): {vals}")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"(NoC on {metric}; in brackets: targets that never reached the threshold)")
    lines += notes
    skipped = payload["skipped"]
    if skipped:
        lines.append(f"skipped ({len(skipped)}):")
        for sk in skipped[:max_skips]:
            who = "/".join(str(sk[k]) for k in ("model", "protocol") if k in sk)
            where = "/".join(str(sk[k]) for k in ("dataset", "case_id", "target_id") if k in sk)
            lines.append(f"  {where}{' [' + who + ']' if who else ''}: {sk['reason']}")
        if len(skipped) > max_skips:
            lines.append(f"  ... and {len(skipped) - max_skips} more (see results.json)")
    return "\n".join(lines)
