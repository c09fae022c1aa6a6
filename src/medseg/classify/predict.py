"""Classify image files: expand folders, predict in chunks, write a CSV, optional Grad-CAM.

``predict_files(clf, inputs)`` returns :class:`Predictions` (one row per file: predicted class
and the probability of every class); ``write_csv`` writes them as
``path,class,p_<class 0>,...``. Files are read by ``medseg.io`` (PNG, TIFF, NIfTI, ...),
scaled to ``[0, 1]`` by ``medseg.classify.data.to_unit_range`` (8-bit: /255, as MedMNIST
arrays; other types: min-max) and resized to the model's training size.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medseg.classify.data import is_image_file, load_images
from medseg.classify.model import Classifier
from medseg.errors import InputError

__all__ = ["Predictions", "find_images", "predict_files", "write_csv", "gradcam_files"]

log = logging.getLogger(__name__)


@dataclass
class Predictions:
    """Per-file results of :func:`predict_files`.

    Attributes:
        paths: the N files, in input order.
        proba: ``(N, K)`` probabilities (softmax; sigmoid per label for multi-label).
        pred: ``(N,)`` class indices, or ``(N, K)`` 0/1 for multi-label.
        classes: the K class names.
        task: the model's task.
        gradcam: file -> overlay PNG, where Grad-CAM overlays were written.
    """

    paths: list[str]
    proba: np.ndarray
    pred: np.ndarray
    classes: list[str]
    task: str
    gradcam: dict[str, str] = field(default_factory=dict)

    def class_names(self) -> list[str]:
        """Predicted class name per file (multi-label: positive names joined by ``;``)."""
        if self.task == "multi-label":
            return [
                ";".join(c for c, on in zip(self.classes, row, strict=True) if on)
                for row in self.pred
            ]
        return [self.classes[int(i)] for i in self.pred]

    def rows(self) -> list[dict[str, str]]:
        """CSV rows: ``path``, ``class``, ``p_<name>`` per class (6 decimals), ``gradcam``."""
        out = []
        for i, (path, name) in enumerate(zip(self.paths, self.class_names(), strict=True)):
            row = {"path": path, "class": name}
            row.update(
                {f"p_{c}": f"{p:.6f}" for c, p in zip(self.classes, self.proba[i], strict=True)}
            )
            if self.gradcam:
                row["gradcam"] = self.gradcam.get(path, "")
            out.append(row)
        return out


def find_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given, and the image files inside given folders (recursive, sorted).

    Raises InputError naming a path that does not exist or a folder without images.
    """
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if is_image_file(f))
            if not files:
                raise InputError(f"{p}: folder holds no image files")
            found += files
        elif p.is_file():
            found.append(p)
        else:
            raise InputError(f"image not found: {p}")
    if not found:
        raise InputError("no images given")
    return found


def _load_chunk(clf: Classifier, paths: list[str]) -> np.ndarray:
    """``(n, C, *spatial)`` for the model; InputError naming a file of the wrong dims."""
    cfg = clf.config
    arr = load_images(paths, cfg.data_size, cfg.in_channels)
    dims = arr.ndim - 2
    if dims != cfg.spatial_dims:
        raise InputError(
            f"{paths[0]} is a {dims}D image but the model {cfg.model!r} was trained on "
            f"{cfg.spatial_dims}D images"
        )
    return arr


def predict_files(
    clf: Classifier,
    inputs: Sequence[str | Path],
    chunk: int = 256,
    progress: bool = False,
) -> Predictions:
    """Classify files and folders of files (see :func:`find_images`), ``chunk`` files at a time."""
    from tqdm.auto import tqdm

    paths = [str(p) for p in find_images(inputs)]
    log.info("classifying %d file(s) with %s", len(paths), clf.config.model)
    probs = []
    with tqdm(total=len(paths), desc="classify", unit="image", disable=not progress) as bar:
        for i in range(0, len(paths), chunk):
            part = paths[i : i + chunk]
            probs.append(clf.predict_proba(_load_chunk(clf, part)))
            bar.update(len(part))
    from medseg.classify.metrics import predict_labels

    proba = np.concatenate(probs)
    pred = predict_labels(proba, clf.config.task)
    return Predictions(paths, proba, pred, clf.classes, clf.config.task)


def gradcam_files(
    clf: Classifier, preds: Predictions, out: str | Path, n: int = 16
) -> dict[str, str]:
    """Grad-CAM overlays (image | heat map) of the first ``n`` files into ``out``; returns
    file -> PNG path and records it in ``preds.gradcam``."""
    from medseg.classify.gradcam import gradcam_overlays

    paths = preds.paths[:n]
    if not paths:
        return {}
    images = _load_chunk(clf, paths)
    written = gradcam_overlays(clf, images, None, out, n=len(paths))
    preds.gradcam = {p: str(w) for p, w in zip(paths, written, strict=True)}
    return preds.gradcam


def write_csv(preds: Predictions, path: str | Path) -> Path:
    """Write :meth:`Predictions.rows` to ``path`` (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = preds.rows()
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
