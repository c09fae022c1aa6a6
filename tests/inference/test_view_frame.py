"""The display frame (medseg.inference.view_frame): array-index prompts become pixels of the
slices the app shows, and results come back in array order; ``Predictor.set_image`` segments
a turned volume in that frame by default (``frame="view"``) or as stored (``"array"``)."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import InputError, PromptError
from medseg.inference.predictor import Predictor
from medseg.inference.result import Prediction
from medseg.inference.view_frame import ViewFrame, segmented_image
from medseg.io.image import Image
from medseg.models.base import Decoded, PromptableModel

RAS = Image(
    np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5),
    spacing=(3.0, 2.0, 1.0),
    direction=np.diag([-1.0, -1.0, 1.0]),
)


def test_prompts_in_array_indices_become_view_pixels() -> None:
    frame = ViewFrame(RAS)
    masks = np.zeros((2, 4, 5), bool)
    masks[0, 0, 1] = True  # array x=1, y=0 -> view col 3, row 3
    kw = {
        "box": (0, 1, 2, 3),
        "points": [(1, 0), (4, 3)],
        "point_labels": [1, 0],
        "scribbles": [{"points": [(0, 0), (4, 3)], "label": 0}],
        "slice_index": 1,
    }
    got = frame.prompts(kw)
    assert got["box"] == (2.0, 0.0, 4.0, 2.0)
    boxes = frame.prompts({"boxes": [(0, 1, 2, 3), (3, 0, 4, 1)]})["boxes"]
    assert boxes == [(2.0, 0.0, 4.0, 2.0), (0.0, 2.0, 1.0, 3.0)]
    assert frame.prompts({"box3d": (0, 1, 0, 2, 3, 1)})["box3d"] == (2.0, 0.0, 0, 4.0, 2.0, 1)
    assert got["points"] == [(3.0, 3.0), (0.0, 0.0)]
    assert got["scribbles"] == [{"points": [(4.0, 3.0), (0.0, 0.0)], "label": 0}]
    assert got["point_labels"] == [1, 0] and got["slice_index"] == 1
    turned = frame.prompts({"scribbles": masks})["scribbles"]
    assert np.argwhere(turned[0]).tolist() == [[3, 3]] and not turned[1].any()
    pair = frame.prompts({"scribbles": {"positive": masks[0], "negative": None}})["scribbles"]
    assert np.argwhere(pair["positive"]).tolist() == [[3, 3]] and pair["negative"] is None
    # a previous mask of the volume (or one slice) is turned like the image
    m = frame.prompts({"mask_input": masks})["mask_input"]
    assert np.argwhere(m).tolist() == [[0, 3, 3]]
    assert np.argwhere(frame.prompts({"mask_input": masks[0]})["mask_input"]).tolist() == [[3, 3]]


def test_the_shown_volume_and_results_back_in_array_order() -> None:
    frame = ViewFrame(RAS)
    assert np.array_equal(frame.shown.array, RAS.array[:, ::-1, ::-1])
    assert segmented_image(RAS).shape == RAS.shape
    view_mask = np.zeros((2, 4, 5), bool)
    view_mask[0, 0, 0] = True  # view pixel (0, 0) of slice 0 = array x=4, y=3
    pred = Prediction(mask=view_mask, logits=np.where(view_mask, 5.0, -5.0).astype(np.float32),
                      scores=np.ones(1, np.float32), labels=view_mask.astype(np.uint8),
                      image=frame.shown, slice_ranges=((0, 0),),
                      info={"slice_boxes": ({1: (0.0, 0.0, 1.0, 2.0)},)})  # fmt: skip
    back = frame.prediction(pred)
    assert np.argwhere(back.mask).tolist() == [[0, 3, 4]]
    assert np.argwhere(back.labels).tolist() == [[0, 3, 4]] and back.logits[0, 3, 4] == 5.0
    assert back.image is RAS and back.slice_ranges == ((0, 0),)
    assert back.info["slice_boxes"] == ({1: (3.0, 1.0, 4.0, 3.0)},)
    label_map = back.to_label_map()
    assert label_map.spacing == RAS.spacing and np.array_equal(label_map.direction, RAS.direction)


def test_a_transposed_view_swaps_rows_and_columns() -> None:
    # array axis 1 runs L-R and axis 2 A-P: the axial view's rows are the array's x
    direction = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    image = Image(np.zeros((2, 4, 5), np.float32), direction=direction)
    frame = ViewFrame(image)
    assert frame.shown.shape == (2, 5, 4)
    arr = np.arange(40).reshape(2, 4, 5)
    assert np.array_equal(frame.to_array(frame.to_view(arr)), arr)
    assert frame.to_view(arr).shape == (2, 5, 4)


def test_images_shown_as_stored_are_not_turned() -> None:
    for image in (Image(np.zeros((4, 5), np.float32)), Image(np.zeros((2, 4, 5), np.float32))):
        assert ViewFrame.of(image, "view") is None and segmented_image(image) is image
    assert ViewFrame.of(RAS, "array") is None
    assert ViewFrame.of(RAS, "view", auto=True) is None  # an auto model sees the volume as stored
    assert isinstance(ViewFrame.of(RAS, "view"), ViewFrame)
    with pytest.raises(InputError, match="unknown frame 'screen'"):
        ViewFrame.of(RAS, "screen")


def test_prompt_errors_quote_the_given_array_indices() -> None:
    frame = ViewFrame(RAS)
    with pytest.raises(PromptError, match=r"box \(0\.0, 0\.0, 9\.0, 3\.0\) extends outside"):
        frame.prompts({"box": (0, 0, 9, 3), "slice_index": 0})
    with pytest.raises(PromptError, match=r"point \(5\.0, 1\.0\) is outside the image"):
        frame.prompts({"points": [(5, 1)], "slice_index": 0})
    with pytest.raises(PromptError, match=r"box3d z range 0\.\.2 is outside"):
        frame.prompts({"box3d": (0, 0, 0, 2, 2, 2)})
    # far edges x1 = W, y1 = H (allowed) stay on the border: pixel indices 0..W-1, 0..H-1
    assert frame.prompts({"box": (0, 0, 5, 4)})["box"] == (0.0, 0.0, 4.0, 3.0)


class _LeftHalf(PromptableModel):
    """Fake model that is not flip-equivariant: a box gives its pixels in the left half of
    the slice it is shown (columns < W / 2); records the boxes and masks it was given."""

    name = "left-half"
    prompt_kinds = frozenset({"box", "mask"})

    def __init__(self) -> None:
        self.boxes: list[tuple[float, ...]] = []
        self.masks: list[np.ndarray | None] = []

    def encode(self, image: np.ndarray) -> np.ndarray:
        return np.asarray(image)

    def decode(self, embedding, prompts, *, multimask=False):  # type: ignore[no-untyped-def]
        h, w = embedding.shape
        out = np.full((len(prompts.boxes), 1, h, w), -6.0, np.float32)
        self.masks.append(prompts.mask_input)
        for i, b in enumerate(prompts.boxes):
            self.boxes.append(tuple(float(v) for v in b))
            x0, y0, x1, y1 = np.round(b).astype(int)
            out[i, 0, y0 : y1 + 1, x0 : min(x1 + 1, w // 2)] = 6.0
        return Decoded(out, np.ones((len(prompts.boxes), 1), np.float32))


def test_predictor_segments_the_view_by_default_and_answers_in_array_order() -> None:
    vol = Image(np.ones((3, 6, 8), np.float32), direction=np.diag([-1.0, -1.0, 1.0]))
    model = _LeftHalf()
    p = Predictor(model, progress=False)
    p.set_image(vol)  # frame="view": the model sees the slices flipped up-down, left-right
    assert np.array_equal(p.image.array, vol.array[:, ::-1, ::-1])
    r = p.predict(box=(0, 0, 7, 5), slice_index=1, propagate=False)
    assert model.boxes == [(0.0, 0.0, 7.0, 5.0)]
    assert r.mask.shape == (6, 8) and r.mask[:, 4:].all() and not r.mask[:, :4].any()
    assert r.image is vol
    r3 = p.predict(box=(0, 0, 7, 5), slice_index=1)  # propagated: the whole volume
    assert r3.mask.shape == (3, 6, 8) and r3.mask[:, :, 4:].all() and not r3.mask[:, :, :4].any()
    assert r3.to_label_map().array[0, 0, 7] == 1 and np.array_equal(
        r3.image.direction, vol.direction
    )
    p.predict(box=(0, 0, 7, 5), mask_input=r, slice_index=1, propagate=False)
    seen = model.masks[-1][0]  # the array-order mask, given to the model in view pixels
    assert (seen[:, :4] > 0).all() and (seen[:, 4:] < 0).all()
    p.set_image(vol, frame="array")  # as stored: the left half of the array
    r = p.predict(box=(0, 0, 7, 5), slice_index=1, propagate=False)
    assert r.mask[:, :4].all() and not r.mask[:, 4:].any()
    p.set_image(vol)
    with pytest.raises(PromptError, match=r"box \(0\.0, 0\.0, 9\.0, 5\.0\) extends outside"):
        p.predict(box=(0, 0, 9, 5), slice_index=1)


def test_predictor_on_a_transposed_view_answers_in_array_shape() -> None:
    # array axis 1 runs L-R, axis 2 A-P: the model sees (Z, X, Y) slices, rows = array x
    direction = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    vol = Image(np.ones((2, 4, 6), np.float32), direction=direction)
    model = _LeftHalf()
    p = Predictor(model, progress=False)
    p.set_image(vol)
    r = p.predict(box=(0, 0, 5, 3), slice_index=0, propagate=False)
    assert model.boxes == [(0.0, 0.0, 3.0, 5.0)]  # (c0, r0, c1, r1) = (y0, x0, y1, x1)
    assert r.mask.shape == (4, 6) and r.mask[:2].all() and not r.mask[2:].any()
