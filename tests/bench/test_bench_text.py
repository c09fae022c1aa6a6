"""medseg.bench.text on a two-image dataset with a scripted text head: exact Dice, click
curve, skipped names, absent-target false positives and the written files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.bench.text import (
    TextBenchConfig,
    absent_candidates,
    dataset_modality,
    regions_overlap,
    run_text_bench,
)
from medseg.errors import InputError
from medseg.io import save
from medseg.models import registry
from medseg.models.base import Decoded

H, W = 64, 96
YY, XX = np.mgrid[:H, :W]
LOW_X = (YY - 32) ** 2 + (XX - 24) ** 2 < 50
HIGH_X = (YY - 32) ** 2 + (XX - 72) ** 2 < 50
LIVER = (YY - 12) ** 2 + (XX - 48) ** 2 < 30
BODY = (YY - 32) ** 2 / 30**2 + (XX - 47.5) ** 2 / 46**2 < 1


class Head:
    """ "kidney": both blobs, "liver": the liver disc; presence 0.9 for both, always."""

    threshold = 0.5

    def __init__(self, lite) -> None:
        self.lite = lite

    def vector(self, phrases):
        return np.full(384, 1.0 if phrases[0] == "kidney" else 2.0, np.float32)

    def decode(self, embedding, vectors):
        masks = [LOW_X | HIGH_X if v[0] == 1.0 else LIVER for v in vectors]
        logits = np.stack([np.where(m, 8.0, -8.0) for m in masks])[:, None]
        return Decoded(logits=logits.astype(np.float32),
                       scores=np.full((len(vectors), 1), 0.9, np.float32))  # fmt: skip


@pytest.fixture
def toy(tmp_path: Path, litemedsam, monkeypatch: pytest.MonkeyPatch) -> Path:
    real = registry.create_model

    def create(name: str, **kw):
        return litemedsam if name == "litemedsam" else real(name, **kw)

    monkeypatch.setattr(registry, "create_model", create)
    monkeypatch.setattr("medseg.inference.text.text_decoder", lambda pred, lite: Head(lite))
    root = tmp_path / "toy"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    image = (BODY * 120 + (LOW_X | HIGH_X | LIVER) * 100).astype(np.uint8)
    lab1 = np.where(HIGH_X, 1, np.where(LIVER, 2, np.where(LOW_X, 3, 0))).astype(np.uint8)
    lab2 = np.where(HIGH_X, 1, 0).astype(np.uint8)  # no liver labelled in case b
    for case, lab in (("a", lab1), ("b", lab2)):
        save(image, root / "images" / f"{case}.png")
        save(lab, root / "labels" / f"{case}.png")
    names = {"0": "background", "1": "kidney_left", "2": "liver", "3": "flux capacitor"}
    entry = {"name": "toy", "dims": 2, "task": "semantic", "modality": "CT (8-bit test)",
             "label_names": names, "cases": []}  # fmt: skip
    (tmp_path / "manifest.json").write_text(json.dumps({"datasets": [entry]}))
    return root


def test_text_bench_measures_dice_clicks_and_absent_targets(toy: Path, tmp_path: Path) -> None:
    cfg = TextBenchConfig(model="litemedsam", clicks=2, synonyms=1, absent_per_image=3)
    out = run_text_bench([toy], cfg, tmp_path / "out", progress=False)
    rows = {(r["case"], r["phrase"]): r for r in out["targets"]}
    assert sorted(rows) == [("a", "left kidney"), ("a", "liver"), ("b", "left kidney")]
    for r in rows.values():  # exact masks: Dice 1, nothing left to click
        assert r["dice"] == 1.0 and r["found"] and r["dice_clicks"] == [1.0, 1.0]
        assert r["modality"] == "CT" and list(r["synonyms"].values()) == [1.0]
    assert [(s["case"], s["target"]) for s in out["skipped"]] == [("a", "label3")]
    assert "unknown target 'flux capacitor'" in out["skipped"][0]["reason"]
    # case b does not show the liver, yet the scripted head finds it: one false positive
    (absent,) = out["absent"]
    assert (absent["case"], absent["phrase"], absent["found"]) == ("b", "liver", True)
    s = out["summary"]
    assert s["all"]["targets"] == s["ct_mr"]["targets"] == 3 and s["all"]["dice_text"] == 1.0
    assert s["absent"] == {"asked": 1, "mask_returned": 1.0}
    assert "| toy | 3 | 1.000 | 1.000 | 1.000 | 1.00 | 0.000 |" in out["table"]
    assert "absent targets: a mask for 100.0% of 1" in out["table"]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["summary"] == s and (tmp_path / "out" / "text_dice.png").stat().st_size > 0


def test_absent_candidates_and_modality_rules(toy: Path) -> None:
    labelled = {1: "kidney_left", 2: "liver"}
    assert absent_candidates("toy", {"kidney_left"}, labelled, "CT") == ["liver"]
    fundus = absent_candidates("hrf_retina_vessels", set(), {1: "retinal blood vessel"}, None)
    assert "polyp" in fundus and "retinal blood vessel" in fundus  # labelled, not here
    assert not any("vessel" in n for n in fundus[1:])  # other fundus sets: same region
    # whole-body CT shows what a chest X-ray shows (lung lobes), not what a fundus photo shows
    assert regions_overlap("chest-xr", {"body"}) and regions_overlap("body", {"brain"})
    assert not regions_overlap("fundus", {"body"}) and not regions_overlap("brain", {"skin"})
    cxr = absent_candidates("cxr_lung_demo", {"lung"}, {1: "lung"}, None)
    assert "amygdala" in cxr and "polyp" in cxr and "lung lower lobe" not in cxr
    assert dataset_modality(toy, None) == "CT"  # from the manifest's description
    assert dataset_modality(toy, "MR") == "MR"  # the image's own wins
    with pytest.raises(InputError, match="clicks must be >= 0"):
        TextBenchConfig(clicks=-1)
