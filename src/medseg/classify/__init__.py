"""Medical image classification, 2D and 3D: MedMNIST ``.npz``, class folders, CSVs.

``train(data, out)`` fits a classifier in a time budget with model selection on the
validation split; ``load(folder)`` returns a :class:`Classifier` whose ``predict_proba`` gives
``(N, K)`` probabilities; ``evaluate`` reports MedMNIST AUC/ACC with calibration, bootstrap
intervals and, optionally, MedMNIST-C corruptions; ``predict_files`` classifies files into
a CSV; ``gradcam_overlays`` shows where it looks.
Torch is imported only when a function needs it.
"""

from __future__ import annotations

from medseg.classify.corrupt import CORRUPTIONS, SEVERITIES, corrupt, corrupt_batch
from medseg.classify.data import TASKS, Dataset, load_images, read_dataset
from medseg.classify.evaluate import evaluate, evaluate_corruptions
from medseg.classify.gradcam import gradcam, gradcam_overlays
from medseg.classify.metrics import accuracy, auc, classification_report
from medseg.classify.model import Classifier, ClassifierConfig, load
from medseg.classify.predict import Predictions, find_images, predict_files, write_csv
from medseg.classify.train import TrainOptions, TrainResult, baseline_options, train

__all__ = [
    "train",
    "load",
    "evaluate",
    "evaluate_corruptions",
    "Classifier",
    "ClassifierConfig",
    "TrainOptions",
    "TrainResult",
    "baseline_options",
    "Dataset",
    "read_dataset",
    "load_images",
    "TASKS",
    "auc",
    "accuracy",
    "classification_report",
    "CORRUPTIONS",
    "SEVERITIES",
    "corrupt",
    "corrupt_batch",
    "gradcam",
    "gradcam_overlays",
    "Predictions",
    "find_images",
    "predict_files",
    "write_csv",
]
