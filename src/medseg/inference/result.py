"""``Prediction``: what :meth:`medseg.Predictor.predict` returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.io.image import Image, LabelMap

__all__ = ["Prediction", "label_map_from_logits", "UNREACHED_LOGIT"]

# Logit stored for 3D slices that propagation never reached (finite, so JSON-safe).
UNREACHED_LOGIT = -100.0
# label_map_from_logits works on slabs of about this many elements per object.
_SLAB_ELEMENTS = 1 << 22


def label_map_from_logits(masks: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Merge ``N`` object masks ``(N, *S)`` into one label map ``(*S)`` (object ``i`` -> ``i + 1``).

    Where masks overlap, the object with the highest logit wins. Returns uint8 when
    ``N < 256`` else uint16. Memory: the output plus temporaries of one slab of at most
    ``_SLAB_ELEMENTS`` elements per object (a whole-volume argmax made int64 copies of a
    600 x 512 x 512 volume: 4 GB more at the end of a 3D propagation).
    """
    n = masks.shape[0]
    dtype = np.uint8 if n < 256 else np.uint16
    out = np.zeros(masks.shape[1:], dtype)
    if n == 1:
        out[masks[0]] = 1
        return out
    if n == 0 or out.size == 0:
        return out
    rows = max(1, _SLAB_ELEMENTS // max(1, out[0].size))
    for a in range(0, out.shape[0], rows):
        m, lg = masks[:, a : a + rows], logits[:, a : a + rows]
        winner = np.argmax(np.where(m, lg, -np.inf), axis=0)
        out[a : a + rows] = np.where(m.any(axis=0), winner + 1, 0)
    return out


@dataclass(frozen=True, eq=False)
class Prediction:
    """A promptable segmentation result.

    Shapes (``S`` = the image's spatial shape, ``(H, W)`` or ``(Z, Y, X)``):

    - one object (``box=`` / ``points=``): ``mask`` and ``logits`` are ``S``;
    - ``N`` objects (``boxes=[...]``): ``(N, *S)``, object ``i`` in ``mask[i]``;
    - ``multimask=True`` (one object, 2D): ``(K, H, W)`` candidates, best is ``mask[best]``.

    Attributes:
        mask: bool mask(s), see above.
        logits: float32 logits of the same shape (``> 0`` is foreground); in 3D, slices
            that propagation never reached hold ``UNREACHED_LOGIT``.
        scores: float32 ``(N,)`` per object or ``(K,)`` per candidate: the model's predicted
            mask quality (LiteMedSAM: predicted IoU; 3D: mean over segmented slices).
        labels: label map of shape ``S``: object ``i`` -> ``i + 1`` (overlaps go to the
            highest logit; with ``multimask`` it is the best candidate as label 1).
        image: the image whose geometry the result shares (numpy input gets unit spacing,
            zero origin and identity direction).
        multimask: True when ``mask`` holds candidates rather than objects.
        slice_ranges: 3D only: inclusive ``(z_first, z_last)`` segmented per object
            (``(z, z - 1)``: nothing segmented).
        found: text prompts only: per object, whether the named target was found (a target
            not found has an empty mask); empty for other prompts.
        info: extra details (prompted slice, boxes used per slice, model name).
    """

    mask: np.ndarray
    logits: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    image: Image | None = None
    multimask: bool = False
    slice_ranges: tuple[tuple[int, int], ...] = ()
    found: tuple[bool, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float:
        """One number: the best candidate's score with ``multimask``, else the mean score."""
        if self.scores.size == 0:
            return float("nan")
        return float(self.scores.max() if self.multimask else self.scores.mean())

    @property
    def best(self) -> int:
        """Index of the highest-scoring candidate / object."""
        return int(np.argmax(self.scores))

    @property
    def num_objects(self) -> int:
        """Number of objects (1 for a single-object or multimask prediction)."""
        return 1 if self.multimask or self.mask.ndim == self.labels.ndim else self.mask.shape[0]

    def to_label_map(
        self,
        label_names: dict[int, str] | None = None,
        values: int | Sequence[int] | None = None,
    ) -> LabelMap:
        """The label map as a :class:`LabelMap` on the image's grid (saveable with
        ``medseg.io.save``), array of shape ``S``.

        ``values`` picks the written label values: None writes object ``i`` as ``i + 1``;
        one int ``K`` writes every object as ``K`` (one class); a sequence gives one value
        per object (``values[i]`` for object ``i``; equal values merge objects). Values are
        1..65535; the array is uint8 when they fit, else uint16. Overlaps go to the object
        with the highest logit, as in ``labels``.
        """
        if self.image is None:
            raise InputError("this prediction has no image geometry; build a LabelMap yourself")
        return LabelMap.like(self.image, self.label_array(values), label_names=label_names)

    def label_array(self, values: int | Sequence[int] | None = None) -> np.ndarray:
        """``labels`` (shape ``S``) with object ``i`` written as ``values`` says (see
        :meth:`to_label_map`)."""
        if values is None:
            return self.labels
        n = self.num_objects
        if isinstance(values, Sequence | np.ndarray) and not isinstance(values, str):
            per_object = list(values)
        else:
            per_object = [values] * n
        if len(per_object) != n:
            raise InputError(
                f"values has {len(per_object)} label values for {n} object(s): give one "
                "value, or one per object"
            )
        for v in per_object:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= 65535:
                raise InputError(f"label value {v!r} must be an integer from 1 to 65535")
        lut = np.array([0, *per_object], dtype=np.int64)
        dtype = np.uint8 if lut.max() <= 255 else np.uint16
        return lut[self.labels].astype(dtype)
