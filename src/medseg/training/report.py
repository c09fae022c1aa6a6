"""Training curves and the validation report of ``medseg auto run``."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medseg.io.atomic import atomic_path

__all__ = [
    "plot_training_curve",
    "write_report",
    "format_summary_table",
    "format_postprocessing_table",
    "format_rater_tables",
]

#: At most this many cases in the report's per-case rater table (the least agreeing ones).
MAX_RATER_CASES = 20


def plot_training_curve(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """PNG with train/validation loss and pseudo-Dice (and its moving average) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    it = [h["iteration"] for h in history]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.plot(it, [h["train_loss"] for h in history], label="train loss", color="tab:blue")
    ax.plot(it, [h["val_loss"] for h in history], label="val loss", color="tab:red")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot(
        it, [h["mean_pseudo_dice"] for h in history], ".", label="pseudo Dice", color="tab:green"
    )
    ax2.plot(
        it, [h["ema_pseudo_dice"] for h in history], label="pseudo Dice (EMA)", color="darkgreen"
    )
    ax2.set_ylabel("Dice")
    ax2.set_ylim(0, 1)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="center right", fontsize=8)
    ax.set_title("medseg auto: training curve")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def format_summary_table(summary: dict[str, Any]) -> str:
    """Markdown table, one row per class: Dice, HD95 (mm), NSD as mean ± std."""
    rows = ["| class | cases | Dice | HD95 (mm) | NSD |", "|---|---|---|---|---|"]
    for label, entry in summary["per_class"].items():
        cells = []
        for m in ("dice", "hd95", "nsd"):
            s = entry[m]
            cells.append(f"{_fmt(s['mean'])} ± {_fmt(s['std'])}")
        rows.append(f"| {label} {entry['name']} | {entry['n_cases']} | " + " | ".join(cells) + " |")
    ov = summary["overall"]
    rows.append(
        f"| mean of classes | {summary['n_cases']} | {_fmt(ov['dice']['class_mean'])} | "
        f"{_fmt(ov['hd95']['class_mean'])} | {_fmt(ov['nsd']['class_mean'])} |"
    )
    return "\n".join(rows)


def format_postprocessing_table(spec: dict[str, Any], names: dict[Any, str] | None = None) -> str:
    """Markdown table of the largest-component choice, one row per label value.

    ``spec`` is :func:`medseg.training.postprocessing.decide_postprocessing`'s dict
    (``largest_component``: the values it is applied to, ``dice_before``/``dice_after``:
    mean validation Dice per value without/with it; keys int, or str after a JSON round
    trip). ``names`` maps label value (int or str) to class name.
    """
    names = {str(k): v for k, v in (names or {}).items()}
    applied = {str(v) for v in spec.get("largest_component", [])}
    before = {str(k): v for k, v in spec.get("dice_before", {}).items()}
    after = {str(k): v for k, v in spec.get("dice_after", {}).items()}
    rows = [
        "| label | Dice before | Dice after | applied |",
        "|---|---|---|---|",
    ]
    for key in sorted(set(before) | set(after), key=lambda k: (len(k), k)):
        label = f"{key} {names[key]}" if names.get(key) else key
        rows.append(
            f"| {label} | {_fmt(before.get(key))} | {_fmt(after.get(key))} | "
            f"{'yes' if key in applied else 'no'} |"
        )
    return "\n".join(rows)


def format_rater_tables(raters: dict[str, Any]) -> str:
    """Markdown: a summary line, a per-class and a per-case table of rater agreement.

    ``raters`` is ``raters.json`` (:func:`medseg.training.raters.prepare_rater_dataset`).
    Dice values are means over cases (per class: over the cases where some rater drew the
    class); the case table keeps the :data:`MAX_RATER_CASES` cases of lowest pairwise Dice
    when there are more, in case order.
    """
    names = list(raters["raters"])
    vs = [f"{n} vs fused" for n in names]
    lines = [
        f"{len(names)} raters ({', '.join(names)}), fused by {raters['method']} over "
        f"{raters['n_cases']} cases: mean pairwise Dice {_fmt(raters['mean_pairwise_dice'])}, "
        f"mean Fleiss' kappa {_fmt(raters['mean_fleiss_kappa'])}.",
        "",
        "| class | cases | pairwise Dice | " + " | ".join(vs) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for value, c in raters["per_class"].items():
        cells = [_fmt(c["dice_vs_fused"][n]) for n in names]
        lines.append(
            f"| {value} {c['name']} | {c['n_cases']} | {_fmt(c['pairwise_dice'])} | "
            + " | ".join(cells) + " |"
        )  # fmt: skip
    cases = list(raters["cases"])
    if len(cases) > MAX_RATER_CASES:
        low = sorted(cases, key=lambda r: r["pairwise_dice"])[:MAX_RATER_CASES]
        cases = [r for r in cases if r in low]
        lines += ["", f"The {MAX_RATER_CASES} cases of lowest pairwise Dice:"]
    lines += [
        "",
        "| case | pairwise Dice | Fleiss' kappa | " + " | ".join(vs) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for r in cases:
        cells = [_fmt(r["dice_vs_fused"][n]) for n in names]
        lines.append(
            f"| {r['case']} | {_fmt(r['pairwise_dice'])} | {_fmt(r['fleiss_kappa'])} | "
            + " | ".join(cells) + " |"
        )  # fmt: skip
    return "\n".join(lines)


def _postprocessing_lines(info: dict[str, Any]) -> list[str]:
    spec = info.get("postprocessing")
    if not spec or not (spec.get("dice_before") or spec.get("dice_after")):
        return ["Largest-component post-processing: not evaluated.", ""]
    names = {k: e.get("name", "") for k, e in info["summary"].get("per_class", {}).items()}
    return [
        "## Largest-component post-processing",
        "",
        "Keeping only the largest connected component of a label is applied where it raised "
        "the label's mean validation Dice.",
        "",
        format_postprocessing_table(spec, names),
        "",
    ]


def _semisup_lines(info: dict[str, Any]) -> list[str]:
    """The semi-supervised section (``info["semi_supervised"]``, see
    :func:`medseg.training.semisup.semisup_summary`), or nothing."""
    s = info.get("semi_supervised")
    if not s:
        return []
    return [
        "## Semi-supervised training",
        "",
        f"{s['n_unlabeled']} unlabelled images were used with the {info['train']['n_train']} "
        f"labelled ones: {s['method']}; unlabelled (mixed) loss weight "
        f"{s['unlabeled_weight']:g}, ramped up over the first {s['rampup_fraction']:.0%} of "
        f"the iterations; teacher = EMA (decay {s['ema_decay']}) of the student; copy-paste "
        f"box {s['box_fraction']:.0%} of the patch side. The saved model is the student.",
        "",
    ]


def write_report(out_dir: str | Path, info: dict[str, Any]) -> Path:
    """Write ``report.json`` and a readable ``report.md`` from the pipeline's results.

    ``info`` keys: ``dataset``, ``plan_notes``, ``fold``, ``train`` (iterations, seconds...),
    ``summary`` (``MetricAccumulator.aggregate()``), ``postprocessing``, ``cases`` (per-case
    rows), ``timings``, ``overlays`` (relative PNG paths), ``curve``, ``warnings`` and,
    when training fused several raters, ``raters`` (``raters.json``).
    """
    out = Path(out_dir)
    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps(info, indent=1, default=str) + "\n")
    t, tm = info["train"], info["timings"]
    lines = [
        f"# medseg auto report: {info['dataset']}",
        "",
        f"Fold `{info['fold']}`: trained on {t['n_train']} cases, validated on "
        f"{t['n_val']} held-out cases"
        + (
            " (fold 'all': validation = training cases, NOT a held-out estimate)"
            if info["fold"] == "all"
            else ""
        )
        + ".",
        f"Training: {t['iterations']} iterations in {tm['train_s']:.0f} s "
        f"(budget {t.get('time_budget_s') or 'fixed iterations'}); preprocessing "
        f"{tm['preprocess_s']:.0f} s; inference {tm['inference_s_per_case']:.2f} s per case; "
        f"total {tm['total_s']:.0f} s.",
        "",
        "## Validation metrics (held-out cases, original geometry)",
        "",
        format_summary_table(info["summary"]),
        "",
        *_postprocessing_lines(info),
    ]
    lines += _semisup_lines(info)
    if info.get("raters"):
        lines += ["## Raters", "", format_rater_tables(info["raters"]), ""]
    if info.get("warnings"):
        lines += ["## Warnings", "", *[f"- {w}" for w in info["warnings"]], ""]
    lines += ["## Plan", "", *[f"- {n}" for n in info["plan_notes"]], ""]
    lines += ["## Curves and examples", "", f"![training curve]({info['curve']})", ""]
    lines += [f"![{Path(p).stem}]({p})" for p in info.get("overlays", [])]
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return out / "report.md"
