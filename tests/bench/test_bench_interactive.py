"""End to end: folders in, results.json / results.csv / plots / galleries and the table out."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medseg.bench import BenchConfig, make_protocol, run_interactive
from medseg.cli.main import main
from medseg.errors import ModelError
from medseg.models import Decoded, PromptableModel, register_model

EXPECTED = [140 / 170, 164 / 182, 188 / 194, 1.0]  # see test_bench_runner.py


def _config(**changes: Any) -> BenchConfig:
    protocols = (
        make_protocol("box", box_jitter=0.0),
        make_protocol("box+clicks", max_interactions=4, box_jitter=0.0),
        make_protocol("scribble", max_interactions=2),
        make_protocol("cvpr24"),
    )
    settings: dict[str, Any] = {"gallery_size": 1, **changes}
    return BenchConfig(models=("bright", "nope"), protocols=protocols, **settings)


def _factory(model_cls):
    def factory(name: str):
        if name != "bright":
            raise ModelError(f"unknown model {name!r}; available models: bright")
        return model_cls()

    return factory


def _summary(payload: dict, model: str, protocol: str) -> dict:
    return next(s for s in payload["summary"] if (s["model"], s["protocol"]) == (model, protocol))


def test_run_interactive_writes_every_output(
    toy_dataset: Path, tmp_path: Path, bright_model
) -> None:
    out = tmp_path / "out"
    res = run_interactive([toy_dataset], _config(), out, factory=_factory(bright_model),
                          progress=False, command=["medseg", "bench"])  # fmt: skip
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "dice_vs_interactions.png", "gallery_bright_box-clicks.png", "gallery_bright_box.png",
        "gallery_bright_cvpr24.png", "results.csv", "results.json",
    ]  # fmt: skip
    payload = json.loads((out / "results.json").read_text())
    assert payload["schema_version"] == 1 and payload["command"] == ["medseg", "bench"]
    assert payload["datasets"][0] | {"path": None} == {
        "name": "toy", "path": None, "layout": "images+labels", "instances": False,
        "modality": None, "num_cases": 4, "num_cases_evaluated": 2, "num_targets": 4,
    }  # fmt: skip
    box = _summary(payload, "bright", "box")
    assert box["overall"]["n_targets"] == 4
    assert box["overall"]["dice_final"] == pytest.approx(140 / 170)
    clicks = _summary(payload, "bright", "box+clicks")["overall"]
    assert clicks["mean_dice_per_step"] == pytest.approx(EXPECTED)
    assert clicks["noc"] == {"85": {"mean": 2.0, "never_reached": 0},
                             "90": {"mean": 2.0, "never_reached": 0}}  # fmt: skip
    cvpr24 = _summary(payload, "bright", "cvpr24")["cvpr24"]
    assert cvpr24["n_cases"] == 2 and cvpr24["dsc"] == pytest.approx(140 / 170)
    assert _summary(payload, "bright", "scribble")["status"] == "unsupported"
    assert _summary(payload, "nope", "box")["status"] == "failed"
    timing = _summary(payload, "bright", "box")["timing"]
    assert timing["set_image_s"]["n"] == 2 and timing["latency_s"]["n"] == 4
    skipped = {(s["case_id"], s.get("model")): s["reason"] for s in payload["skipped"]}
    assert skipped[("empty", None)] == "label has no foreground"
    assert "does not match label shape" in skipped[("bad", None)]
    assert "unknown model 'nope'" in skipped[("a", "nope")]
    assert "scribbles" in skipped[("*", "bright")]
    case = payload["runs"][1]["cases"][0]  # box+clicks, case a
    assert [len(t["steps"]) for t in case["targets"]] == [4, 4]
    assert case["targets"][0]["steps"][1]["prompt"] == {"point": [6, 6], "label": 1}
    with (out / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 + 16 + 4 + len(payload["skipped"])
    assert rows[4]["protocol"] == "box+clicks"
    assert float(rows[4]["dice"]) == pytest.approx(140 / 170)
    assert sum(r["status"] == "skipped" for r in rows) == 5
    assert "skipped (5):" in res.table and "bright / scribble: unsupported" in res.table
    assert res.evaluated == 12


def test_parallel_jobs_give_the_same_results(
    toy_dataset: Path, tmp_path: Path, bright_model
) -> None:
    def dices(jobs: int) -> list:
        cfg = _config(jobs=jobs, gallery_size=0)
        res = run_interactive([toy_dataset], cfg, tmp_path / f"j{jobs}",
                              factory=_factory(bright_model), progress=False)  # fmt: skip
        return [[s["dice"] for t in c["targets"] for s in t["steps"]]
                for r in res.payload["runs"] for c in r["cases"]]  # fmt: skip

    assert dices(2) == dices(1)


class BoxOnlyBright(PromptableModel):
    """Registered test model: bright pixels (> 0.2 after normalisation) inside the box, minus
    the box's top 3 rows (as BrightModel); boxes only, so clicks raise ``PromptError``."""

    name = "bench-test-bright"
    prompt_kinds = frozenset({"box"})

    def encode(self, image: np.ndarray) -> np.ndarray:
        return np.asarray(image, np.float32)

    def decode(self, embedding: np.ndarray, prompts: Any, *, multimask: bool = False) -> Decoded:
        x0, y0, x1, y1 = (int(v) for v in prompts.boxes[0])
        inside = np.zeros(embedding.shape[:2], bool)
        inside[y0 + 3 : y1 + 1, x0 : x1 + 1] = True
        fg = inside & (embedding.reshape(*embedding.shape[:2], -1).mean(axis=-1) > 0.2)
        logits = np.where(fg, 5.0, -5.0).astype(np.float32)[None, None]
        return Decoded(logits=logits, scores=np.ones((1, 1), np.float32))


@register_model("bench-test-bright")
def _bench_test_bright(**overrides: Any) -> BoxOnlyBright:
    return BoxOnlyBright()


def test_cli_through_the_predictor(toy_dataset: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    code = main(["bench", "interactive", str(toy_dataset), "--model", "bench-test-bright",
                 "--model", "nope", "--protocol", "box", "--protocol", "box+clicks",
                 "--box-jitter", "0", "--out", str(out), "--gallery-size", "1"])  # fmt: skip
    assert code == 0
    table = capsys.readouterr().out
    assert "bench-test-bright" in table and "skipped" in table
    payload = json.loads((out / "results.json").read_text())
    box = _summary(payload, "bench-test-bright", "box")["overall"]["dice_final"]
    assert box == pytest.approx(140 / 170)
    clicks = _summary(payload, "bench-test-bright", "box+clicks")
    assert clicks["status"] == "unsupported" and "points" in clicks["reason"]
    assert _summary(payload, "nope", "box")["reason"].startswith("unknown model 'nope'")


def test_cli_nothing_evaluated_exits_1(toy_dataset: Path, tmp_path: Path) -> None:
    args = ["bench", "interactive", str(toy_dataset), "--model", "nope", "--out", str(tmp_path)]
    assert main(args) == 1
    assert main(["bench", "interactive", str(tmp_path / "none"), "--model", "x"]) == 2


def test_shared_data_2d_and_3d(shared_data: Path, tmp_path: Path) -> None:
    cfg = BenchConfig(models=("bench-test-bright",), protocols=(make_protocol("cvpr24"),),
                      limit=1, max_targets_per_case=2, gallery_size=0)  # fmt: skip
    res = run_interactive([shared_data / "kvasir_seg_sample", shared_data / "brats2015_deepmedic"],
                          cfg, tmp_path, progress=False)  # fmt: skip
    runs = res.payload["runs"][0]["cases"]
    assert [c["dataset"] for c in runs] == ["kvasir_seg_sample", "brats2015_deepmedic"]
    assert all(c["status"] == "ok" and c["targets"] for c in runs)
    assert all(t["slice_index"] is not None for t in runs[1]["targets"])
    assert res.payload["summary"][0]["cvpr24"]["n_cases"] == 2


def test_volume_mode_prompts_a_3d_box(tmp_path: Path) -> None:
    from medseg.io import Image, LabelMap, save

    root = tmp_path / "vol"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    lab = np.zeros((8, 20, 20), np.uint8)
    lab[2:6, 5:15, 5:15] = 1
    save(Image((lab * 100).astype(np.int16), spacing=(2.0, 1.0, 1.0)), root / "images" / "v.nii.gz")
    save(LabelMap(lab, spacing=(2.0, 1.0, 1.0)), root / "labels" / "v.nii.gz")
    box = make_protocol("box", box_jitter=0)
    cfg = BenchConfig(models=("bench-test-bright",), protocols=(box,), volume=True, gallery_size=1)
    res = run_interactive([root], cfg, tmp_path / "out", progress=False)
    target = res.payload["runs"][0]["cases"][0]["targets"][0]
    assert target["slice_index"] is None and target["area"] == 400
    assert target["steps"][0]["prompt"] == {"box": [5, 5, 2, 14, 14, 5]}
    # the start slice loses the box's top 3 rows (Dice 140/170 there); the Predictor's
    # propagation takes each next slice's box from the previous mask, so it loses more
    assert 0.5 < target["steps"][0]["dice"] < 140 / 170


def test_model_failing_on_an_image_is_reported_per_case(toy_dataset: Path, tmp_path: Path):
    class Broken:
        def set_image(self, image) -> None:
            raise RuntimeError("out of memory")

        def predict(self, box=None):  # never reached
            raise AssertionError

    cfg = BenchConfig(models=("broken",), protocols=(make_protocol("box"),), gallery_size=0)
    res = run_interactive([toy_dataset], cfg, tmp_path, factory=lambda name: Broken(),
                          progress=False)  # fmt: skip
    reasons = [(s["case_id"], s["reason"]) for s in res.payload["skipped"] if s.get("model")]
    assert reasons == [("a", "set_image: RuntimeError: out of memory"),
                       ("b", "set_image: RuntimeError: out of memory")]  # fmt: skip
    assert res.evaluated == 0 and "set_image: RuntimeError" in res.table
