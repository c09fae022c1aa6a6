"""The post-processing section of the ``medseg auto`` report.md: a table, not a dict."""

from __future__ import annotations

import json
from pathlib import Path

from medseg.training.report import format_postprocessing_table, write_report

SPEC = {
    "largest_component": [2],
    "dice_before": {1: 0.84571, 2: 0.5},
    "dice_after": {1: 0.8401, 2: 0.61249},
}


def _stats(mean: float) -> dict[str, float]:
    return {"mean": mean, "std": 0.0}


def _info(postprocessing: dict) -> dict:
    entry = {"n_cases": 2, "dice": _stats(0.8), "hd95": _stats(3.0), "nsd": _stats(0.9)}
    return {
        "dataset": "Dataset001_Toy",
        "fold": 0,
        "train": {"n_train": 4, "n_val": 2, "iterations": 10, "time_budget_s": 60.0},
        "timings": {"train_s": 50, "preprocess_s": 3, "inference_s_per_case": 0.5, "total_s": 60},
        "summary": {
            "n_cases": 2,
            "per_class": {1: {"name": "liver", **entry}, 2: {"name": "tumour", **entry}},
            "overall": {m: {"class_mean": v} for m, v in (("dice", 0.8), ("hd95", 3), ("nsd", 1))},
        },
        "postprocessing": postprocessing,
        "plan_notes": ["2D images"],
        "curve": "training_curve.png",
    }


def test_table_rows_per_label() -> None:
    assert format_postprocessing_table(SPEC, {1: "liver", 2: "tumour"}).splitlines() == [
        "| label | Dice before | Dice after | applied |",
        "|---|---|---|---|",
        "| 1 liver | 0.846 | 0.840 | no |",
        "| 2 tumour | 0.500 | 0.612 | yes |",
    ]


def test_table_after_json_round_trip_and_without_names() -> None:
    spec = json.loads(json.dumps({**SPEC, "dice_before": {1: 0.5, 10: 0.25, 2: 0.75}}))
    assert format_postprocessing_table(spec).splitlines()[2:] == [
        "| 1 | 0.500 | 0.840 | no |",
        "| 2 | 0.750 | 0.612 | yes |",
        "| 10 | 0.250 | n/a | no |",
    ]


def test_report_md_has_the_table_and_no_dict(tmp_path: Path) -> None:
    text = write_report(tmp_path, _info(SPEC)).read_text()
    assert "{" not in text and "dice_before" not in text
    lines = text.splitlines()
    start = lines.index("## Largest-component post-processing")
    assert lines[start : start + 9] == [
        "## Largest-component post-processing",
        "",
        "Keeping only the largest connected component of a label is applied where it raised "
        "the label's mean validation Dice.",
        "",
        "| label | Dice before | Dice after | applied |",
        "|---|---|---|---|",
        "| 1 liver | 0.846 | 0.840 | no |",
        "| 2 tumour | 0.500 | 0.612 | yes |",
        "",
    ]
    assert json.loads((tmp_path / "report.json").read_text())["postprocessing"] == json.loads(
        json.dumps(SPEC)
    )


def test_report_md_without_postprocessing(tmp_path: Path) -> None:
    empty = {"largest_component": [], "dice_before": {}, "dice_after": {}}
    lines = write_report(tmp_path, _info(empty)).read_text().splitlines()
    assert "Largest-component post-processing: not evaluated." in lines
