"""Mask prompts as logits (``medseg.inference.prompt_input``) on hand-built arrays."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import PromptError
from medseg.inference.prompt_input import BINARY_MASK_LOGIT, binary_logits, mask_logits


def test_binary_logits_exact() -> None:
    out = binary_logits(np.array([[True, False], [False, True]]))
    assert out.dtype == np.float32
    hi, lo = BINARY_MASK_LOGIT, -BINARY_MASK_LOGIT
    assert out.tolist() == [[hi, lo], [lo, hi]]
    assert binary_logits(np.array([0, 3, -1])).tolist() == [-8.0, 8.0, -8.0]


def test_mask_logits_shapes_and_errors() -> None:
    mask = np.zeros((2, 3), bool)
    mask[0, 1] = True
    assert mask_logits(mask, (2, 3), 1, None).shape == (1, 2, 3)
    volume = np.zeros((4, 2, 3), bool)
    volume[2] = mask
    np.testing.assert_array_equal(
        mask_logits(volume, (2, 3), 1, 2, image_shape=(4, 2, 3))[0], binary_logits(mask)
    )
    with pytest.raises(PromptError, match="does not match"):
        mask_logits(np.zeros((3, 3), bool), (2, 3), 1, None)
    with pytest.raises(PromptError, match="NaN"):
        mask_logits(np.full((2, 3), np.nan, np.float32), (2, 3), 1, None)
