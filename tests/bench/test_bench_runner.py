"""One target through a protocol: prompts, mask_input feedback, metrics, unsupported prompts."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from medseg.bench.data import Target, TargetSpec
from medseg.bench.protocols import make_protocol
from medseg.bench.runner import ModelState, UnsupportedProtocol, run_target, target_rng
from medseg.errors import PromptError
from medseg.io import Image

# Dice after box, click 1, 2, 3 for a 10x10 square with BrightModel (see conftest): the box
# misses the top 3 rows (70 of 100 px), clicks add 12, 12 and 6 px.
EXPECTED = [140 / 170, 164 / 182, 188 / 194, 1.0]


def _target() -> Target:
    gt = np.zeros((30, 30), bool)
    gt[5:15, 5:15] = True
    spec = TargetSpec("toy", "c1", "label1", 1, "square", None, None, 100)
    return Target(spec, gt, Image((gt * 100).astype(np.uint8)))


def _run(model, protocol, state=None):
    target = _target()
    model.set_image(target.image)
    state = state or ModelState.for_predictor(model)
    return run_target(model, target, protocol, target_rng(0, target.spec), state)


def test_box_then_clicks_exact_dice_and_mask_input_feedback(bright_model) -> None:
    model = bright_model()
    proto = make_protocol("box+clicks", max_interactions=6, box_jitter=0.0)
    res = _run(model, proto)
    assert res.status == "ok" and res.stopped == "perfect"
    assert [s.dice for s in res.steps] == pytest.approx(EXPECTED)
    assert [s.iou for s in res.steps] == pytest.approx([d / (2 - d) for d in EXPECTED])
    assert [s.kind for s in res.steps] == ["box", "click", "click", "click"]
    assert [s.prompt for s in res.steps] == [
        {"box": [5, 5, 14, 14]},
        {"point": [6, 6], "label": 1},
        {"point": [10, 6], "label": 1},
        {"point": [13, 5], "label": 1},
    ]
    assert res.steps[-1].nsd == 1.0 and all(s.latency_s >= 0 for s in res.steps)
    first, second, last = model.calls[0], model.calls[1], model.calls[-1]
    assert first["mask_input"] is None and first["points"] is None
    assert second["box"] == (5, 5, 14, 14) and second["points"] == [(6, 6)]
    assert last["points"] == [(6, 6), (10, 6), (13, 5)] and last["point_labels"] == [1, 1, 1]
    assert np.array_equal(second["mask_input"].mask, _target().mask & (np.arange(30) >= 8)[:, None])


def test_without_mask_input_every_click_is_sent_again(bright_model) -> None:
    model = bright_model()
    proto = dataclasses.replace(make_protocol("box+clicks", max_interactions=3), box_jitter=0.0,
                                use_mask_input=False)  # fmt: skip
    res = _run(model, proto)
    assert [s.dice for s in res.steps] == pytest.approx(EXPECTED[:3])
    assert all(c["mask_input"] is None for c in model.calls)


def test_clicks_only_and_nsd_rule(bright_model) -> None:
    proto = dataclasses.replace(make_protocol("clicks", max_interactions=2), nsd_min_dice=0.5)
    res = _run(bright_model(), proto)
    # first click at the square's centre (9, 9): the model adds a 5x5 window (25 px)
    assert res.steps[0].prompt == {"point": [9, 9], "label": 1}
    assert res.steps[0].dice == pytest.approx(50 / 125)
    assert res.steps[0].nsd == 0.0  # Dice <= 0.5: NSD set to 0 by the challenge rule


def test_same_seed_same_jittered_box_for_every_model(bright_model) -> None:
    proto = make_protocol("box", box_jitter=0.2)
    a, b = _run(bright_model(), proto), _run(bright_model(), proto)
    assert a.steps[0].prompt == b.steps[0].prompt
    other = TargetSpec("toy", "c1", "label2", 2, None, None, None, 1)
    assert target_rng(0, other).integers(1 << 30) != target_rng(0, _target().spec).integers(1 << 30)


class NoPoints:
    """Accepts boxes only, like a box-only model behind the Predictor."""

    def set_image(self, image) -> None:
        self.shape = image.shape

    def predict(self, box=None, points=None, point_labels=None, mask_input=None):
        if points is not None:
            raise PromptError("model 'nopoints' does not accept points prompts")
        return SimpleNamespace(mask=np.zeros(self.shape, bool))


def test_prompt_error_on_a_new_prompt_kind_marks_the_protocol_unsupported() -> None:
    with pytest.raises(UnsupportedProtocol, match="does not accept points"):
        _run(NoPoints(), make_protocol("box+clicks", max_interactions=3))
    with pytest.raises(UnsupportedProtocol, match="scribbles"):
        _run(NoPoints(), make_protocol("scribble", max_interactions=2))
    assert not ModelState.for_predictor(NoPoints()).scribbles_ok


class Flaky(NoPoints):
    """Accepts points once, then fails: a target-level error, not an unsupported protocol."""

    calls = 0

    def predict(self, box=None, points=None, point_labels=None, mask_input=None):
        self.calls += 1
        if self.calls == 3:
            raise PromptError("point outside the image")
        return SimpleNamespace(mask=np.zeros(self.shape, bool))


def test_later_failures_are_target_errors_and_bad_masks_too() -> None:
    res = _run(Flaky(), make_protocol("clicks", max_interactions=4))
    assert res.status == "error" and res.reason == "PromptError: point outside the image"

    class WrongShape(NoPoints):
        def predict(self, **kwargs):
            return SimpleNamespace(mask=np.zeros((3, 3), bool))

    res = _run(WrongShape(), make_protocol("box"))
    assert res.status == "error" and "shape (3, 3)" in res.reason


def test_scribble_protocol_passes_scribble_objects(bright_model) -> None:
    class Scribbler:
        model = SimpleNamespace(prompt_kinds=frozenset({"scribbles", "mask"}))

        def set_image(self, image) -> None:
            self.shape = image.shape

        def predict(self, scribbles=None, mask_input=None):
            self.last = scribbles
            out = np.zeros(self.shape, bool)
            for s in scribbles:
                out |= s.mask(self.shape)
            return SimpleNamespace(mask=out)

    model = Scribbler()
    res = _run(model, make_protocol("scribble", max_interactions=2))
    assert [s.kind for s in res.steps] == ["scribble", "scribble"]
    assert res.steps[0].prompt["label"] == 1 and len(model.last) == 2
    assert all(_target().mask[y, x] for x, y in res.steps[0].prompt["points"])
