"""Label names in evaluation: ``load_label_names`` files and names carried by label maps
(the Python API behind ``medseg evaluate --label-names``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import InputError
from medseg.io import save
from medseg.io.image import LabelMap
from medseg.metrics.evaluate import EvaluationConfig, evaluate_paths, load_label_names


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "data",
    [
        {"1": "spleen", "2": "liver"},  # plain value -> name
        {"labels": {"background": 0, "spleen": 1, "liver": 2}, "channel_names": {}},  # nnU-Net v2
        {"labels": {"0": "background", "1": "spleen", "2": "liver"}},  # nnU-Net v1
    ],
)
def test_load_label_names_layouts(tmp_path, data):
    names = load_label_names(_write(tmp_path / "n.json", data))
    assert {k: v for k, v in names.items() if k} == {1: "spleen", 2: "liver"}


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, r"missing\.json: cannot read label names"),
        ("{not json", r"n\.json: not valid JSON"),
        ([1, 2], r"n\.json: expected \{\"1\": \"name\""),
        ({"labels": {"liver": [1, 2]}}, r"n\.json: region-based labels"),
        ({"spleen": "one"}, r"n\.json: labels must map values to names"),
        ({"1": "a", "2": 3}, r"n\.json: labels must map values to names"),
    ],
)
def test_load_label_names_bad_files(tmp_path, content, match):
    path = tmp_path / ("missing.json" if content is None else "n.json")
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        _write(path, content)
    with pytest.raises(InputError, match=match):
        load_label_names(path)


def _pair(tmp_path: Path, names: dict[int, str] | None = None) -> tuple[Path, Path]:
    arr = np.zeros((4, 4), np.uint8)
    arr[0:2, 0:2], arr[2:4, 2:4] = 1, 2
    gt = save(LabelMap(arr, label_names=names or {}), tmp_path / "gt.npz")
    pred = save(LabelMap(arr), tmp_path / "pred.npz")
    return pred, gt


def test_names_from_label_maps_and_config(tmp_path):
    pred, gt = _pair(tmp_path, {1: "a", 2: "b"})
    result = evaluate_paths(pred, gt, EvaluationConfig())
    assert [r["name"] for r in result.rows] == ["a", "b"]
    assert result.summary["per_class"][1]["name"] == "a"
    config = EvaluationConfig(label_names={2: "kidney"})  # the config wins, per label
    assert config.label_names == ((2, "kidney"),)
    assert config.to_dict()["label_names"] == {"2": "kidney"}
    result = evaluate_paths(pred, gt, config)
    assert [r["name"] for r in result.rows] == ["a", "kidney"]
    assert result.summary["per_class"][2]["name"] == "kidney"
    (tmp_path / "plain").mkdir()
    unnamed = evaluate_paths(*_pair(tmp_path / "plain"), EvaluationConfig())
    assert [r["name"] for r in unnamed.rows] == ["", ""]
