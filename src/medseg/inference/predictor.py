"""``Predictor``: promptable segmentation of 2D images and 3D volumes with any registered model.

>>> import medseg
>>> p = medseg.Predictor("litemedsam")
>>> p.set_image(image)                      # embeds once (cached)
>>> r = p.predict(box=(x0, y0, x1, y1))     # cheap: prompt encoder + mask decoder only
>>> r.mask.shape == image.shape[:2]

Input arrays (numpy):

- ``(H, W)``: a 2D gray image;
- ``(H, W, 3)`` (or ``(H, W, 4)``, alpha dropped): a 2D RGB image;
- ``(Z, Y, X)``: a volume. A numpy array with 3 leading entries, ``(3, Y, X)``, is ambiguous
  (channels-first RGB or a 3-slice volume) and is rejected: pass a 3-slice volume as a
  :class:`medseg.io.Image` (whose ``channels`` flag says what the axes are).

A :class:`medseg.io.Image` is used as it is; CT images get a CT window (``window``,
``soft_tissue`` by default), other modalities 0.5–99.5 percentile clipping, uint8 images
division by 255 (the model's ``normalize``).

An automatic model (a ``medseg auto`` model folder, :mod:`medseg.automatic.segmenter`) is
something a Predictor is *given*: ``Predictor("runs/x")`` (the default promptable model plus
that folder) or ``Predictor(model, auto="runs/x")``. ``set_image`` then runs it once (cached);
``predict()`` without prompts returns the automatic mask of class ``label`` (default: the
first foreground class); ``predict(..., label=K)`` with prompts corrects class K's automatic
mask; prompts without ``label`` segment a new object as with any model. ``segment_all()``
gives the whole label map.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import Any

import numpy as np

from medseg.errors import InputError, ModelError, PromptError
from medseg.inference.cache import CacheInfo, EmbeddingCache, content_hash
from medseg.inference.first_mask import auto_prediction, corrected_volume
from medseg.inference.image_input import as_image, guess_modality, model_array
from medseg.inference.prompt_checks import check_prompts, given_kinds, start_3d
from medseg.inference.prompt_input import BINARY_MASK_LOGIT, prompt_set, volume_logits
from medseg.inference.propagation import PropagationConfig, propagate
from medseg.inference.result import Prediction, label_map_from_logits
from medseg.inference.view_frame import ViewFrame, in_view_frame
from medseg.io.image import Image, LabelMap
from medseg.models.base import PromptableModel
from medseg.prompts.types import PromptSet, validate_slice_index

__all__ = ["Predictor", "as_image", "guess_modality", "BINARY_MASK_LOGIT"]

log = logging.getLogger(__name__)


class Predictor:
    """Promptable segmentation with a cached image embedding (see the module docstring).

    Args:
        model: a registered model name (``medseg.list_models()``), the folder of a
            ``medseg auto`` model (= the default model with ``auto`` set to that folder) or
            a model instance; default ``"default"``, the registry's best model on held-out
            data for boxes, clicks and scribbles (see docs/benchmarks.md).
        auto: an automatic model (:class:`medseg.automatic.AutoSegmenter` or its folder)
            giving first masks (see the module docstring).
        cache_size: number of slice embeddings kept (LRU; LiteMedSAM: 4 MiB each).
        cache_bytes: also bound the embedding cache in bytes: a count, or a
            :class:`medseg.inference.cache.MemoryBudget` shared with other caches.
        window: CT window name or :class:`medseg.io.intensity.CTWindow` for CT images.
        propagation: 3D propagation rule parameters.
        progress: show a progress bar during 3D propagation (on a terminal).
        text_weights: the text head's weights file for ``predict(text=...)``; None = bundled.
        **model_overrides: model options, e.g. ``backend="onnx"``, ``cache_dir=...``; with
            an automatic model, options named like
            :class:`medseg.automatic.model.PredictConfig` fields (``folds``, ``tta``, ...)
            configure it.

    A Predictor holds the current image and the embedding cache, so it is not thread-safe:
    use one per thread, or serialise ``set_image``/``predict`` pairs with a lock.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | PromptableModel = "default",
        *,
        auto: Any = None,
        cache_size: int = 32,
        cache_bytes: Any = None,
        window: Any = None,
        propagation: PropagationConfig | None = None,
        progress: bool = True,
        text_weights: str | os.PathLike[str] | None = None,
        **model_overrides: Any,
    ) -> None:
        from medseg.automatic.segmenter import resolve_auto
        from medseg.models.registry import create_model

        model, self.auto, model_overrides = resolve_auto(model, auto, model_overrides)
        if isinstance(model, PromptableModel):
            if model_overrides:
                raise ModelError("model options only apply when the model is given by name")
            self.model = model
        else:
            self.model = create_model(model, **model_overrides)
        if int(cache_size) < 1:
            raise InputError(f"cache_size must be >= 1, got {cache_size}")
        self.window = window
        self.propagation = propagation or PropagationConfig()
        self.progress = progress
        self._cache = EmbeddingCache(cache_size, cache_bytes)
        self._image: Image | None = None
        self._unit: np.ndarray | None = None
        self._key = ""
        self._auto: LabelMap | None = None
        self._frame: ViewFrame | None = None  # set_image(frame="view") of a turned volume
        self.text_weights = text_weights
        self._text_decoder: Any = None  # medseg.inference.text loads it on first use

    # ---- image -----------------------------------------------------------------------
    @property
    def image(self) -> Image | None:
        """The image the model segments (None before :meth:`set_image`): the given one, or
        in the view frame the volume as the app shows it; results carry the given one."""
        return self._image

    def set_image(self, image: Image | np.ndarray, *, modality: str | None = None,
                  frame: str = "view") -> None:  # fmt: skip
        """Set the image to segment; a 2D image is embedded now, a volume slice by slice later.

        ``modality`` overrides the image's (e.g. ``"CT"`` for a numpy array in HU). An auto
        model segments the whole image now (cached like embeddings). ``frame``: ``"view"``
        segments a volume's slices as the app shows them (e.g. a RAS NIfTI flipped), prompts
        and results still in array indices; ``"array"``: as stored (see ``view_frame``).
        Raises ``InputError`` for unusable arrays (NaN/inf, wrong shape).
        """
        img = as_image(image)
        if modality is not None:
            img = img.with_array(img.array, modality=modality)
        auto, view = self.auto, ViewFrame.of(img, frame, self.auto is not None)
        img = img if view is None else view.shown
        arr = model_array(img, first_channel=auto is not None)
        if arr.size == 0:
            raise InputError(f"image is empty: shape {arr.shape}")
        modality = guess_modality(img, arr)
        unit = self.model.normalize(arr, modality=modality, window=self.window)
        labels = None
        if auto is not None:  # before the state changes: a failing image keeps the previous
            key = content_hash(img.array, img.channels, img.spacing, img.origin, img.direction)
            labels = self._cache.get_or_compute((key, "auto"), lambda: auto.segment(img))
        self._key = content_hash(arr, modality, repr(self.window), self.model.name)
        self._image, self._unit, self._auto, self._frame = img, unit, labels, view
        if img.ndim == 2:
            self.embedding()

    def _require_image(self) -> Image:
        if self._image is None:
            raise PromptError("no image: call set_image(image) before predict()")
        return self._image

    def embedding(self, slice_index: int | None = None) -> Any:
        """The cached embedding of the 2D image or of one slice of the volume."""
        if self._image is None or self._unit is None:
            raise PromptError("no image: call set_image(image) before predict()")
        unit = self._unit
        z = None if self._image.ndim == 2 else validate_slice_index(slice_index, unit.shape[0])
        return self._cache.get_or_compute(
            (self._key, z), lambda: self.model.encode(unit if z is None else unit[z])
        )

    def segment_all(self) -> LabelMap:
        """Auto models: the automatic label map of the current image (class names in
        ``label_names``), on the image's grid."""
        if self.auto is None or self._auto is None:
            raise ModelError(f"segment_all() needs a medseg auto model (Predictor(MODEL_DIR)), "
                             f"not {self.model.name!r}")  # fmt: skip
        self._require_image()
        return self._auto

    def cache_info(self) -> CacheInfo:
        """Hits, misses (= encoder runs), size, capacity and bytes of the embedding cache."""
        return self._cache.info()

    @property
    def nbytes(self) -> int:
        """Bytes of the current image and its normalised copy (the cache's: ``cache_info()``)."""
        arrays = (None if self._image is None else self._image.array, self._unit)
        return sum(int(a.nbytes) for a in arrays if a is not None)

    # ---- prompts ---------------------------------------------------------------------
    def _prompt_set(self, shape: tuple[int, int], *args: Any, **kwargs: Any) -> PromptSet:
        """:func:`medseg.inference.prompt_input.prompt_set` for the current image."""
        image_shape = None if self._image is None else self._image.shape
        return prompt_set(shape, *args, image_shape=image_shape, **kwargs)

    # ---- prediction ------------------------------------------------------------------
    @in_view_frame
    def predict(
        self,
        box: Any = None,
        points: Any = None,
        point_labels: Any = None,
        mask_input: Any = None,
        multimask: bool = False,
        *,
        boxes: Any = None,
        slice_index: int | None = None,
        box3d: Any = None,
        scribbles: Any = None,
        label: int | None = None,
        propagate: bool = True,
        text: str | None = None,
        texts: Any = None,
    ) -> Prediction:
        """Segment the object(s) the prompts point at; see :class:`Prediction` for shapes.

        Args:
            box: ``(x0, y0, x1, y1)`` in pixels (x = column, y = row).
            points: ``[(x, y), ...]``; ``point_labels``: 1 = foreground, 0 = background
                (default all 1).
            mask_input: a previous :class:`Prediction` or a mask/logits of the image's
                shape, to refine. 3D: a correction on ``slice_index`` is propagated until
                it agrees with this volume result, which is kept beyond (rule 5 of
                :mod:`medseg.inference.propagation`).
            multimask: return the model's candidate masks (one object, 2D only).
            boxes: several boxes, one object each, decoded in one pass.
            slice_index: 3D: the slice the 2D prompts are on; the object is propagated
                through the volume from there.
            box3d: 3D: ``(x0, y0, z0, x1, y1, z1)``; starts at the middle slice (or
                ``slice_index``) and limits propagation to ``z0..z1``.
            scribbles: positive/negative scribbles on the image (3D: on ``slice_index``):
                a ``(2, H, W)`` mask pair, ``{"positive": mask, "negative": mask}`` or a
                list of polylines ``{"points": [(x, y), ...], "label": 1}`` (see
                :func:`medseg.prompts.scribbles.validate_scribbles`).
            label: with an automatic model only: the class (label value) to return
                without prompts (default the first foreground class) or to correct with
                the prompts (seeded as ``mask_input`` unless one is given).
            propagate: 3D: ``False`` segments the slice ``slice_index`` only and returns a
                2D result (``(Y, X)`` mask) for it.
            text: a target's name (``"left kidney"``; ``medseg.prompts.text.list_targets()``);
                ``texts``: several, one object each. Not found -> empty mask and
                ``found[i]`` False (:mod:`medseg.inference.text`). With ``points=`` the
                clicks correct the text mask; other prompts: pass ``mask_input=result``.
        """
        image = self._require_image()
        first = (box, boxes, points, point_labels, mask_input, scribbles)
        kinds = given_kinds(first, box3d)
        if text is not None or texts is not None:
            return self._predict_text(
                (text, texts), kinds, label, multimask, first, slice_index, propagate
            )
        check_prompts(self.model, kinds, ndim=image.ndim, multimask=multimask,
                      stacked=boxes is not None, auto=self.auto is not None, label=label,
                      point_labels=point_labels)  # fmt: skip
        if self.auto is not None and (label is not None or not kinds):
            return self._predict_auto(first, kinds, label, slice_index, box3d)
        return self._predict_prompts(first, multimask, slice_index, box3d, propagate)

    def _predict_text(
        self, names: tuple, kinds: set[str], label: int | None, multimask: bool, first: tuple,
        slice_index: int | None, propagate: bool,
    ) -> Prediction:  # fmt: skip
        """``predict(text=... | texts=...)``: the named targets (``names`` = ``(text,
        texts)``), their masks corrected by the clicks in ``first`` if any."""
        from medseg.inference import text as tx

        points, point_labels = first[2], first[3]
        targets, stacked = tx.text_list(*names, kinds, label, multimask)
        r = tx.predict_text(self, targets, slice_index, propagate, stacked)
        if points is None:
            return r
        return tx.refine_text(self, r, points, point_labels, slice_index, propagate)

    def _predict_prompts(
        self, first: tuple, multimask: bool, slice_index: int | None, box3d: Any, propagate: bool
    ) -> Prediction:
        """The object(s) of the prompts ``first``: on the 2D image, or on the volume's slice
        ``slice_index`` alone (``propagate=False``) or propagated through the volume."""
        image = self._require_image()
        if image.ndim == 3:
            if not propagate:
                return self._predict_slice(first, slice_index, box3d)
            return self._predict_3d(first, slice_index, box3d)
        if slice_index is not None or box3d is not None:
            raise PromptError("slice_index and box3d need a 3D image; this image is 2D")
        box, boxes, points, point_labels, mask_input, scribbles = first
        prompts = self._prompt_set(
            image.shape, box, boxes, points, point_labels, mask_input, None, scribbles
        )
        return self._predict_2d(prompts, multimask, stacked=boxes is not None)

    def _predict_slice(self, first: tuple, slice_index: int | None, box3d: Any) -> Prediction:
        """One object on slice ``slice_index`` of the volume only, as a 2D result."""
        box, boxes, points, point_labels, mask_input, scribbles = first
        if box3d is not None or boxes is not None:
            raise PromptError("propagate=False takes one object's box/points/scribbles, not "
                              "box3d= or boxes=")  # fmt: skip
        image = self._require_image()
        if slice_index is None:
            raise PromptError("this image is 3D: give slice_index=z, the slice of the prompts")
        z = validate_slice_index(slice_index, image.shape[0])
        prompts = self._prompt_set(
            image.shape[1:], box, None, points, point_labels, mask_input, z, scribbles
        )
        d = self.model.decode(self.embedding(z), prompts)
        logits, scores = d.logits[0, 0], np.asarray(d.scores[:, 0], np.float32)
        return Prediction(mask=logits > 0, logits=logits, scores=scores, image=image,
                          labels=(logits > 0).astype(np.uint8),
                          info={"model": self.model.name, "slice_index": z})  # fmt: skip

    def _predict_auto(
        self, first: tuple, kinds: set[str], label: int | None, z: int | None, box3d: Any
    ) -> Prediction:
        """The automatic mask of class ``label``, corrected by the prompts ``first`` (on
        slice ``z`` of a volume) with the mask as ``mask_input`` unless one is given."""
        box, boxes, points, point_labels, mask_input, scribbles = first
        image, labels, auto = self._require_image(), self._auto, self.auto
        if labels is None or auto is None:
            raise ModelError("no automatic mask: the Predictor has no automatic model")
        k = auto.check_label(label)
        seed = labels.array == k
        info = {"model": f"{auto.name}+{self.model.name}", "label": k,
                "label_name": auto.label_names[k]}  # fmt: skip
        if not kinds:
            return auto_prediction(seed, image, info)
        if boxes is not None or box3d is not None:
            raise PromptError("an auto model's mask is corrected one class and slice at a time: "
                              "give box=, points= or scribbles= (with slice_index= on a volume), "
                              "not boxes= or box3d=")  # fmt: skip
        mask_input = seed if mask_input is None else mask_input
        if image.ndim == 2:
            if z is not None:
                raise PromptError("slice_index needs a 3D image; this image is 2D")
            prompts = self._prompt_set(
                image.shape, box, None, points, point_labels, mask_input, None, scribbles
            )
            pred = self._predict_2d(prompts, False, stacked=False)
            return replace(pred, info={**pred.info, **info})
        one = self._predict_slice((box, None, points, point_labels, mask_input, scribbles), z, None)
        z = one.info["slice_index"]
        return corrected_volume(seed, z, one.logits, one.score, image, info)

    def _predict_2d(self, prompts: PromptSet, multimask: bool, stacked: bool) -> Prediction:
        decoded = self.model.decode(self.embedding(), prompts, multimask=multimask)
        if multimask:
            logits, scores = decoded.logits[0], decoded.scores[0]
            mask = logits > 0
            labels = mask[int(np.argmax(scores))].astype(np.uint8)
        else:
            logits, scores = decoded.logits[:, 0], decoded.scores[:, 0]
            mask = logits > 0
            labels = label_map_from_logits(mask, logits)
            if not stacked:
                logits, mask = logits[0], mask[0]
        return Prediction(mask=mask, logits=logits, scores=np.asarray(scores, np.float32),
                          labels=labels, image=self._image, multimask=multimask,
                          info={"model": self.model.name})  # fmt: skip

    def _predict_3d(self, first: tuple, slice_index: int | None, box3d: Any) -> Prediction:
        """Propagate from the start slice; ``first`` holds the start slice's prompts
        ``(box, boxes, points, point_labels, mask_input, scribbles)``."""
        box, boxes, points, point_labels, mask_input, scribbles = first
        depth, ny, nx = shape = self._require_image().shape
        box, start, z_range = start_3d(shape, box, boxes, slice_index, box3d)
        prompts = self._prompt_set(
            (ny, nx), box, boxes, points, point_labels, mask_input, start, scribbles
        )
        seed = self.model.decode(self.embedding(start), prompts)
        previous = None if box3d is not None else volume_logits(mask_input, (depth, ny, nx))

        def segment(z: int, bxs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            d = self.model.decode(self.embedding(z), PromptSet(boxes=bxs))
            return d.logits[:, 0], d.scores[:, 0]

        res = propagate(segment, seed.logits[:, 0], seed.scores[:, 0], start, depth, z_range,
                        self.propagation, self.progress, previous=previous,
                        spacing=self._require_image().spacing)  # fmt: skip
        mask = res.logits > 0
        labels = label_map_from_logits(mask, res.logits)
        logits = res.logits if boxes is not None else res.logits[0]
        info = {"model": self.model.name, "start_slice": start, "slice_boxes": res.boxes}
        return Prediction(mask=mask if boxes is not None else mask[0], logits=logits,
                          scores=res.scores, labels=labels, image=self._image,
                          slice_ranges=res.ranges, info=info)  # fmt: skip
