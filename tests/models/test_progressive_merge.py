"""Progressive merge (FocalClick's rule) on hand-built logits, and in medseg-interactive."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.models.progressive_merge import progressive_merge


def _logits(mask: np.ndarray, value: float = 5.0) -> np.ndarray:
    return np.where(mask, value, -value).astype(np.float32)


def _prev_and_new() -> tuple[np.ndarray, np.ndarray]:
    """Previous: a 3x3 square at rows/cols 1-3. New: the square grown by a column on its
    right (cols 4), a separate blob at (7, 7), and the square's top-left pixel removed."""
    prev = np.zeros((9, 9), bool)
    prev[1:4, 1:4] = True
    new = prev.copy()
    new[1:4, 4] = True
    new[7, 7] = True
    new[1, 1] = False
    return _logits(prev), _logits(new, 4.0)


def test_positive_click_adds_only_the_clicked_component():
    prev, new = _prev_and_new()
    out = progressive_merge(new, prev, click=(4, 2), positive=True)  # (x=4, y=2): new column
    expected = np.zeros((9, 9), bool)
    expected[1:4, 1:5] = True  # the column is added; the blob and the removal are not
    np.testing.assert_array_equal(out > 0, expected)
    assert out[2, 4] == 4.0 and out[1, 1] == 5.0 and out[7, 7] == -5.0  # values from new/prev


def test_negative_click_removes_only_the_clicked_component():
    prev, new = _prev_and_new()
    out = progressive_merge(new, prev, click=(1, 1), positive=False)
    expected = np.zeros((9, 9), bool)
    expected[1:4, 1:4] = True
    expected[1, 1] = False
    np.testing.assert_array_equal(out > 0, expected)


def test_click_the_network_did_not_follow_keeps_the_previous_mask():
    prev, new = _prev_and_new()
    out = progressive_merge(new, prev, click=(0, 8), positive=True)  # bg in prev and new
    np.testing.assert_array_equal(out, prev)
    assert out is not prev


def test_click_agreeing_with_the_previous_mask_takes_the_new_prediction():
    prev, new = _prev_and_new()
    np.testing.assert_array_equal(progressive_merge(new, prev, (2, 2), True), new)
    np.testing.assert_array_equal(progressive_merge(new, prev, (8, 0), False), new)


def test_components_are_eight_connected_and_clicks_are_rounded_and_clipped():
    prev = _logits(np.zeros((5, 5), bool))
    diag = np.zeros((5, 5), bool)
    diag[[0, 1, 2], [0, 1, 2]] = True  # touching only at corners
    diag[4, 4] = True
    out = progressive_merge(_logits(diag), prev, click=(-3.0, 0.4), positive=True)  # -> (0, 0)
    expected = diag.copy()
    expected[4, 4] = False
    np.testing.assert_array_equal(out > 0, expected)


def test_shape_mismatch_raises():
    from medseg.errors import InputError

    with pytest.raises(InputError, match="one shape"):
        progressive_merge(np.zeros((4, 4)), np.zeros((4, 5)), (0, 0), True)


def test_interactive_model_merge_option(monkeypatch):
    from medseg.errors import ModelError
    from medseg.models.registry import create_model
    from medseg.prompts.types import PromptSet

    with pytest.raises(ModelError, match="merge"):
        create_model("medseg-interactive", merge="sometimes")
    model = create_model("medseg-interactive", merge="progressive", num_threads=1)
    prev, new = _prev_and_new()
    fake = lambda emb, objs: (np.stack([new] * len(objs)), np.ones(len(objs), np.float32))  # noqa: E731
    monkeypatch.setattr(model, "predict_objects", fake)
    emb = model.encode(np.zeros((9, 9), np.float32))
    clicks = PromptSet(points=np.array([[[2.0, 2.0], [4.0, 2.0]]]), point_labels=np.array([[1, 1]]),
                       mask_input=prev[None])  # fmt: skip
    merged = model.decode(emb, clicks).logits[0, 0]
    np.testing.assert_array_equal(merged, progressive_merge(new, prev, (4, 2), True))
    # with scribbles (order unknown) or without a previous mask: the new prediction as it is
    scr = np.zeros((1, 2, 9, 9), bool)
    scr[0, 0, 2, 4] = True
    with_scribble = PromptSet(points=clicks.points, point_labels=clicks.point_labels,
                              mask_input=prev[None], scribbles=scr)  # fmt: skip
    np.testing.assert_array_equal(model.decode(emb, with_scribble).logits[0, 0], new)
    first = PromptSet(points=clicks.points, point_labels=clicks.point_labels)
    np.testing.assert_array_equal(model.decode(emb, first).logits[0, 0], new)
