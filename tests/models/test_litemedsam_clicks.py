"""litemedsam-clicks: registration, loading the fine-tuned decoder weights, prompt handling
(box, clicks, box + clicks, mask_input) and bad prompts on small synthetic images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from clicks_weights import write_clicks_weights  # tests/_support

from medseg.errors import ModelError, PromptError
from medseg.models import create_model, list_models
from medseg.models.litemedsam import LiteMedSAMEmbedding
from medseg.models.litemedsam_clicks import TRAINED_PREFIXES
from medseg.prompts import PromptSet


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    weights = write_clicks_weights(tmp_path_factory.mktemp("clicks") / "w.pt")
    return create_model(
        "litemedsam-clicks", backend="torch", num_threads=2, decoder_weights=str(weights)
    )


def _embedding(shape=(40, 60)) -> LiteMedSAMEmbedding:
    import torch

    g = torch.Generator().manual_seed(0)
    feats = torch.randn((1, 256, 64, 64), generator=g) * 0.1
    resized = (int(shape[0] * 256 / max(shape) + 0.5), int(shape[1] * 256 / max(shape) + 0.5))
    return LiteMedSAMEmbedding(feats, shape, resized)


def test_registered_and_declares_its_prompts(model) -> None:
    assert "litemedsam-clicks" in list_models()
    assert model.prompt_kinds == frozenset({"box", "points", "mask"})
    assert model.refines_previous_mask and model.num_multimask_outputs == 0
    cfg = model.config_dict()
    assert cfg["name"] == "litemedsam-clicks" and len(cfg["decoder_weights_sha256"]) == 64


def test_no_weights_is_a_clear_error_naming_how_to_train_them() -> None:
    with pytest.raises(ModelError, match=r"no bundled weights.*train_foundation_clicks.py"):
        create_model("litemedsam-clicks")


def test_the_measured_recipe_is_recorded_without_left_out_data() -> None:
    from medseg.training.foundation.split import LEAVE_OUT_GROUPS

    record = Path(__file__).parents[2] / "benchmarks/results/litemedsam_clicks_weights.json"
    side = json.loads(record.read_text())
    assert side["train_group"] == list(LEAVE_OUT_GROUPS["train"])
    assert not set(side["targets_per_dataset"]) & set(LEAVE_OUT_GROUPS["left_out"])
    assert side["command"].startswith("python benchmarks/train_foundation_clicks.py")


def test_every_prompt_combination_gives_one_mask_per_object(model) -> None:
    emb = _embedding()
    box = np.array([[10.0, 5.0, 40.0, 30.0], [0.0, 0.0, 20.0, 20.0]])
    pts = np.array([[[20.0, 15.0]], [[5.0, 5.0]]])
    lab = np.array([[1], [0]])
    prev = np.zeros((2, 40, 60), np.float32)
    for prompts in (
        PromptSet(boxes=box),
        PromptSet(points=pts, point_labels=lab),
        PromptSet(boxes=box, points=pts, point_labels=lab),
        PromptSet(boxes=box, points=pts, point_labels=lab, mask_input=prev),
        PromptSet(points=pts, point_labels=lab, mask_input=prev),
    ):
        out = model.decode(emb, prompts)
        assert out.logits.shape == (2, 1, 40, 60) and out.scores.shape == (2, 1)
        assert out.logits.dtype == np.float32 and np.all(np.isfinite(out.logits))


def test_mask_input_changes_the_result(model) -> None:
    emb = _embedding()
    box = np.array([[10.0, 5.0, 40.0, 30.0]])
    a = model.decode(emb, PromptSet(boxes=box)).logits
    fg = np.full((1, 40, 60), 8.0, np.float32)
    b = model.decode(emb, PromptSet(boxes=box, mask_input=fg)).logits
    assert not np.allclose(a, b)


BOX = np.array([[1.0, 1.0, 9.0, 9.0]])


def _pt(x: float, y: float, label: int = 1) -> dict:
    return {"points": np.array([[[x, y]]]), "point_labels": np.array([[label]])}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mask_input": np.zeros((1, 40, 60), np.float32)}, "needs a box or clicks"),
        (_pt(5.0, 5.0, 2), "point_labels"),
        (_pt(60.0, 5.0), "lie on the image"),
        (_pt(5.0, -1.0), "lie on the image"),
        ({"points": np.zeros((1, 0, 2)), "point_labels": np.zeros((1, 0), int)}, r"P >= 1"),
        ({"boxes": np.array([[30.0, 5.0, 10.0, 20.0]])}, "x0 < x1"),
        ({"boxes": np.array([[np.nan, 5.0, 10.0, 20.0]])}, "finite"),
        ({"boxes": BOX, "mask_input": np.zeros((1, 40, 59))}, "mask_input must be"),
        ({"boxes": BOX, "scribbles": np.zeros((1, 2, 40, 60), bool)}, "no scribbles"),
    ],
)  # fmt: skip
def test_bad_prompts_raise_prompt_errors(model, kwargs, message) -> None:
    with pytest.raises(PromptError, match=message):
        model.decode(_embedding(), PromptSet(**kwargs))


def test_multimask_is_rejected(model) -> None:
    with pytest.raises(PromptError, match="no multimask"):
        model.decode(
            _embedding(), PromptSet(boxes=np.array([[1.0, 1.0, 9.0, 9.0]])), multimask=True
        )


@pytest.mark.slow
def test_loading_litemedsam_own_decoder_reproduces_litemedsam(model, tmp_path) -> None:
    """With LiteMedSAM's own prompt encoder / mask decoder as 'fine-tuned' weights the model
    is exactly LiteMedSAM: the loading path replaces those entries and nothing else."""
    import torch

    base = create_model("litemedsam", backend="torch")
    state = {k: v for k, v in base.net.state_dict().items() if k.startswith(TRAINED_PREFIXES)}
    torch.save(state, tmp_path / "own.pt")
    same = create_model(
        "litemedsam-clicks", backend="torch", decoder_weights=str(tmp_path / "own.pt")
    )
    emb = _embedding()
    prompts = PromptSet(boxes=np.array([[10.0, 5.0, 40.0, 30.0]]))
    np.testing.assert_array_equal(
        same.decode(emb, prompts).logits, base.decode(emb, prompts).logits
    )
    assert not np.array_equal(model.decode(emb, prompts).logits, base.decode(emb, prompts).logits)


def test_bad_weight_files_raise_model_errors(tmp_path) -> None:
    import torch

    with pytest.raises(ModelError, match="decoder weights not found"):
        create_model("litemedsam-clicks", decoder_weights=str(tmp_path / "none.pt"))
    torch.save({"mask_decoder.x": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ModelError, match="not a litemedsam-clicks weights file"):
        create_model("litemedsam-clicks", decoder_weights=str(tmp_path / "bad.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot load decoder weights"):
        create_model("litemedsam-clicks", decoder_weights=str(tmp_path / "junk.pt"))
    with pytest.raises(ModelError, match="unknown litemedsam-clicks option"):
        create_model("litemedsam-clicks", colour="red")


@pytest.mark.slow
def test_predictor_box_then_click_on_a_synthetic_disc(model) -> None:
    """End to end through the Predictor: a box on a bright disc, then a click plus the
    previous result as mask_input; both masks cover the disc well."""
    import medseg

    yy, xx = np.mgrid[:96, :128]
    disc = (yy - 48) ** 2 + (xx - 60) ** 2 <= 20**2
    image = np.where(disc, 200, 40).astype(np.uint8)
    pred = medseg.Predictor(model, progress=False)
    pred.set_image(image)
    first = pred.predict(box=(40, 28, 80, 68))
    second = pred.predict(
        box=(40, 28, 80, 68), points=[(60, 48)], point_labels=[1], mask_input=first
    )
    for r in (first, second):
        m = np.asarray(r.mask, bool)
        assert m.shape == disc.shape
        assert 2 * (m & disc).sum() / (m.sum() + disc.sum()) > 0.85
