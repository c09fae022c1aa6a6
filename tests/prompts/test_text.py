"""Phrase parser and vocabulary lookup (medseg.prompts.text), on the bundled vocabulary and a
small hand-built one."""

from __future__ import annotations

import pytest

from medseg.errors import PromptError
from medseg.prompts.text import (
    Vocabulary,
    list_targets,
    load_vocabulary,
    modality_code,
    nearest_targets,
    normalize_phrase,
    parse_target,
)


def _entry(tid, name, synonyms=(), laterality=None, base=None, modalities=("CT",), generic=False):
    return {"id": tid, "name": name, "synonyms": list(synonyms), "laterality": laterality,
            "base": base, "side_rule": "midline" if laterality else None, "generic": generic,
            "modalities": list(modalities), "dims": [3], "datasets": ["x"],
            "labels": {"x": [tid]}}  # fmt: skip


@pytest.fixture()
def vocab() -> Vocabulary:
    return Vocabulary({"format": "medseg-text-vocabulary", "version": 1, "targets": [
        _entry("kidney", "kidney", ["renal"]),
        _entry("kidney_left", "left kidney", laterality="left", base="kidney"),
        _entry("kidney_right", "right kidney", laterality="right", base="kidney"),
        _entry("heart_atrium_left", "heart atrium left", ["left atrium", "la"]),
        _entry("liver", "liver", ["hepatic"]),
        _entry("polyp", "polyp", modalities=("endoscopy",)),
        _entry("roi", "roi", ["region of interest"], generic=True),
        _entry("lesion_a", "lesion a", ["mass"], modalities=("US",)),
        _entry("lesion_b", "lesion b", ["mass"], modalities=("MG",)),
    ]})  # fmt: skip


def parse(text, vocab, **kw):
    return parse_target(text, vocabulary=vocab, suggest="string", **kw)


def test_normalize_phrase():
    assert normalize_phrase("Segment the LEFT Kidneys!") == "left kidney"
    assert normalize_phrase("peritumoural oedema") == "peritumoral edema"
    assert normalize_phrase("left 9th rib") == "left 9 rib"
    assert normalize_phrase("kidney_left") == "kidney left"
    assert normalize_phrase("  ") == ""


@pytest.mark.parametrize(
    ("text", "tid", "side", "model_target"),
    [
        ("left kidney", "kidney_left", "left", "kidney"),
        ("Kidney, Left", "kidney_left", "left", "kidney"),
        ("L kidney", "kidney_left", "left", "kidney"),
        ("rt renal", "kidney_right", "right", "kidney"),
        ("kidneys", "kidney", None, "kidney"),
        ("bilateral kidneys", "kidney", None, "kidney"),
        ("left and right kidney", "kidney", None, "kidney"),
        ("left atrium", "heart_atrium_left", None, "heart_atrium_left"),
        ("LA", "heart_atrium_left", None, "heart_atrium_left"),
        ("hepatic", "liver", None, "liver"),
    ],
)
def test_parse(vocab, text, tid, side, model_target):
    q = parse(text, vocab)
    assert (q.target.id, q.side, q.model_target) == (tid, side, model_target)


def test_unknown_lists_nearest(vocab):
    with pytest.raises(PromptError, match=r"unknown target 'kidny'; nearest known targets: kidney"):
        parse("kidny", vocab)


@pytest.mark.parametrize("text", ["", "   ", "the", None])
def test_empty(vocab, text):
    with pytest.raises(PromptError, match="empty text prompt"):
        parse(text, vocab)


def test_side_without_lateral_target(vocab):
    with pytest.raises(PromptError, match="'liver' has no left side"):
        parse("left liver", vocab)


def test_generic_and_modality(vocab):
    with pytest.raises(PromptError, match="does not say what to segment"):
        parse("region of interest", vocab)
    with pytest.raises(PromptError, match="exists in endoscopy images, not in this CT image"):
        parse("polyp", vocab, modality="CT")
    assert parse("polyp", vocab, modality="RGB").target.id == "polyp"  # RGB: not checked


def test_ambiguous_resolved_by_modality(vocab):
    with pytest.raises(PromptError, match="ambiguous"):
        parse("mass", vocab)
    assert parse("mass", vocab, modality="MG").target.id == "lesion_b"


def test_modality_codes():
    codes = [modality_code(m) for m in ("CT", "mr", "DX", "RGB", None)]
    assert codes == ["CT", "MR", "XR", None, None]


def test_nearest_string(vocab):
    assert nearest_targets("livr", 2, method="string", vocabulary=vocab) == ["liver", "lesion a"]


def test_bundled_vocabulary():
    v = load_vocabulary()
    assert v.version == 1 and len(v.targets) > 300
    for text, tid in [("left kidney", "kidney_left"), ("spleen", "spleen"), ("L1", "vertebrae_L1"),
                      ("left 9th rib", "rib_left_9"), ("Precentral_L", "precentral_gyrus_left"),
                      ("whole tumour", "whole_tumor"), ("ET", "enhancing_tumor"),
                      ("IVC", "inferior_vena_cava"), ("fetal head", "fetal_head")]:  # fmt: skip
        assert parse_target(text, suggest="string").target.id == tid
    kidney = v.targets["kidney"]
    assert kidney.labels["totalseg_ref"] == ("kidney_right", "kidney_left")
    assert {"CT", "MR"} <= set(kidney.modalities)


def test_list_targets():
    everything = list_targets()
    names = [t.name for t in everything]
    assert names == sorted(names) and "left kidney" in names
    ct = list_targets("CT")
    assert all("CT" in t.modalities for t in ct) and "polyp" not in {t.name for t in ct}
