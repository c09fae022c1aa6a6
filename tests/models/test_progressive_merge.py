"""Progressive merge (FocalClick's rule) and touch-up on hand-built logits, and both in
medseg-interactive."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.models.progressive_merge import progressive_merge, touchup_merge


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


def _touchup_case() -> tuple[np.ndarray, np.ndarray]:
    """Previous: a 10x10 square (rows/cols 5-14) of a 20x20 image. New: one pixel added next
    to the click at (x=15, y=10) and one far away at (x=9, y=15): 2 changed pixels."""
    prev = np.zeros((20, 20), bool)
    prev[5:15, 5:15] = True
    new = prev.copy()
    new[10, 15] = True
    new[15, 9] = True
    return _logits(prev), _logits(new, 4.0)


def test_touchup_keeps_a_small_correction_near_its_click():
    prev, new = _touchup_case()
    # extent 11 px, radius max(3, 0.2 * 11) = 3: (15, 10) is inside, (9, 15) is 7.8 px away
    out = touchup_merge(new, prev, (15.0, 10.0), radius_fraction=0.2, max_change=0.1)
    yy, xx = np.mgrid[:20, :20]
    near = (xx - 15) ** 2 + (yy - 10) ** 2 <= 9
    np.testing.assert_array_equal(out, np.where(near, new, prev))
    assert out[10, 15] > 0 and out[15, 9] < 0
    # a large radius takes the whole new prediction
    np.testing.assert_array_equal(touchup_merge(new, prev, (15, 10), 2.0, 0.1), new)


def test_touchup_takes_a_large_correction_as_it_is():
    prev, new = _touchup_case()
    # 2 changed pixels > 0.01 * 100 previous pixels: a large correction
    np.testing.assert_array_equal(touchup_merge(new, prev, (15, 10), 0.2, 0.01), new)
    # nothing changed: the new logits
    np.testing.assert_array_equal(touchup_merge(prev * 2, prev, (15, 10), 0.2, 0.1), prev * 2)


def test_touchup_monotone_near_the_click():
    prev, new = _touchup_case()
    new[9, 14] = -4.0  # a removal next to a positive click
    kept = touchup_merge(new, prev, (15, 10), 0.2, 0.1, positive=True)
    assert kept[9, 14] == prev[9, 14] > 0 and kept[10, 15] > 0
    unrestricted = touchup_merge(new, prev, (15, 10), 0.2, 0.1)
    assert unrestricted[9, 14] < 0
    # a negative click only removes: the addition at (15, 10) is refused
    neg = touchup_merge(new, prev, (15, 10), 0.2, 0.1, positive=False)
    assert neg[10, 15] < 0 and neg[9, 14] < 0
    with pytest.raises(Exception, match="one shape"):
        touchup_merge(np.zeros((4, 4)), np.zeros((5, 4)), (0, 0), 0.2, 0.1)


def test_interactive_model_touchup_option(monkeypatch):
    from medseg.errors import ModelError
    from medseg.models.registry import create_model
    from medseg.prompts.types import PromptSet

    with pytest.raises(ModelError, match="touchup"):
        create_model("medseg-interactive", touchup_change=-1.0)
    with pytest.raises(ModelError, match="box_touchup"):
        create_model("medseg-interactive", box_touchup_radius=-1.0)
    model = create_model("medseg-interactive", merge="touchup", touchup_radius=0.2,
                         touchup_change=0.1, num_threads=1)  # fmt: skip
    prev, new = _touchup_case()
    fake = lambda emb, objs: (np.stack([new] * len(objs)), np.ones(len(objs), np.float32))  # noqa: E731
    monkeypatch.setattr(model, "predict_objects", fake)
    emb = model.encode(np.zeros((20, 20), np.float32))
    clicks = PromptSet(points=np.array([[[8.0, 8.0], [15.0, 10.0]]]),
                       point_labels=np.array([[1, 1]]), mask_input=prev[None])  # fmt: skip
    merged = model.decode(emb, clicks).logits[0, 0]
    np.testing.assert_array_equal(merged, touchup_merge(new, prev, (15, 10), 0.2, 0.1))
    assert merged[15, 9] < 0 < merged[10, 15]
    # with a box the box_touchup_* thresholds apply: 0 takes the prediction as it is
    boxed = PromptSet(boxes=np.array([[4.0, 4.0, 15.0, 15.0]]), points=clicks.points,
                      point_labels=clicks.point_labels, mask_input=prev[None])  # fmt: skip
    wide = create_model("medseg-interactive", merge="touchup", box_touchup_radius=0.2,
                        box_touchup_change=0.1, touchup_radius=2.0, num_threads=1)  # fmt: skip
    monkeypatch.setattr(wide, "predict_objects", fake)
    np.testing.assert_array_equal(wide.decode(emb, boxed).logits[0, 0],
                                  touchup_merge(new, prev, (15, 10), 0.2, 0.1))  # fmt: skip
    np.testing.assert_array_equal(wide.decode(emb, clicks).logits[0, 0], new)  # radius 2
    off = create_model("medseg-interactive", merge="touchup", box_touchup_change=0.0,
                       num_threads=1)  # fmt: skip
    monkeypatch.setattr(off, "predict_objects", fake)
    np.testing.assert_array_equal(off.decode(emb, boxed).logits[0, 0], new)
    assert create_model("medseg-interactive").config.merge == "touchup"
