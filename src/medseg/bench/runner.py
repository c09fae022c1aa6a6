"""Run one model through the interaction protocols on planned targets.

The model is used through the public Predictor interface only: ``set_image(image)`` once per
image (2D image, 3D slice or volume), then ``predict(box=..., points=..., point_labels=...,
mask_input=..., scribbles=..., box3d=...)`` once per interaction; ``result.mask`` is the
prediction. Any object with these two methods works (tests pass small fake models).

A ``PromptError`` on a prompt combination that never worked before for the model marks the
protocol *unsupported* for that model (e.g. LiteMedSAM has no scribbles); it is reported, not
raised. Other errors mark the target as ``error`` with the message.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medseg.bench.data import Target, TargetSpec, slice_image
from medseg.bench.protocols import Protocol
from medseg.errors import PromptError
from medseg.prompts.simulation import ClickSimulator, Scribble, next_scribble, simulate_box

__all__ = [
    "StepResult",
    "TargetResult",
    "GalleryItem",
    "ModelState",
    "target_rng",
    "run_target",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepResult:
    """Metrics after one interaction (1-based ``step``) and the prompt added at it."""

    step: int
    kind: str
    prompt: dict[str, Any]
    dice: float
    iou: float
    nsd: float
    latency_s: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TargetResult:
    """One target under one protocol: ``status`` ``"ok"`` or ``"error"`` (with ``reason``).

    ``stopped`` says why it has fewer steps than the protocol allows (``"perfect"``: nothing
    left to correct), else None.
    """

    spec: TargetSpec
    protocol: str
    status: str = "ok"
    reason: str | None = None
    steps: list[StepResult] = field(default_factory=list)
    stopped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.spec.__dict__.items() if k not in ("dataset", "case_id")}
        out.update(status=self.status, reason=self.reason, stopped=self.stopped)
        out["steps"] = [s.to_dict() for s in self.steps]
        return out


@dataclass(frozen=True, eq=False)
class GalleryItem:
    """What the gallery shows for one target: a 2D image, ground truth, final prediction
    and prompts (all on one 2D slice)."""

    spec: TargetSpec
    protocol: str
    dice: float
    image: Any
    gt: np.ndarray
    pred: np.ndarray
    box: tuple[int, ...] | None
    points: list[tuple[int, ...]]
    point_labels: list[int]
    scribbles: list[Scribble]
    slice_index: int | None = None


@dataclass
class ModelState:
    """Per-model bookkeeping shared by worker threads: prompt combinations that worked, and
    protocols found unsupported (name -> reason)."""

    scribbles_ok: bool = True
    worked: set[frozenset[str]] = field(default_factory=set)
    unsupported: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def for_predictor(predictor: Any) -> ModelState:
        """State whose ``scribbles_ok`` says whether the model declares the ``scribbles``
        prompt kind (``model.prompt_kinds``)."""
        kinds = getattr(getattr(predictor, "model", None), "prompt_kinds", frozenset())
        return ModelState(scribbles_ok="scribbles" in kinds)


class UnsupportedProtocol(Exception):
    """Internal: the model rejected a prompt combination it never accepted before."""


def target_rng(seed: int, spec: TargetSpec) -> np.random.Generator:
    """Random generator of one target: the same for every model and protocol (so every
    model gets the same box and first prompt), independent of run order and ``--jobs``."""
    key = zlib.crc32(f"{spec.dataset}/{spec.case_id}/{spec.target_id}".encode())
    return np.random.default_rng([int(seed), key])


def _kinds(kwargs: dict[str, Any]) -> frozenset[str]:
    names = {"points": "points", "mask_input": "mask"}  # box, box3d, scribbles as they are
    return frozenset(names.get(k, k) for k in kwargs)


class _Session:
    """Prompt state of one target under one protocol."""

    def __init__(self, target: Target, protocol: Protocol, rng: np.random.Generator) -> None:
        self.gt = target.mask
        self.protocol = protocol
        self.rng = rng
        self.volume = target.mask.ndim == 3
        self.box = simulate_box(self.gt, protocol.box_jitter, rng) if protocol.uses_box else None
        self.clicker = ClickSimulator(self.gt, protocol.click, rng)
        self.scribbles: list[Scribble] = []

    def next_prompt(self, step: int, pred: np.ndarray | None) -> tuple[str, dict] | None:
        """Add the next prompt; returns ``(kind, record)`` or None when nothing is left."""
        kind = self.protocol.initial if step == 0 else self.protocol.correction
        if kind == "box":
            return "box", {"box": list(self.box)}
        if kind == "click":
            click = self.clicker.next(pred)
            return None if click is None else ("click", click.to_dict())
        scribble = next_scribble(
            pred, self.gt, config=self.protocol.scribble, click_config=self.protocol.click,
            rng=self.rng,
        )  # fmt: skip
        if scribble is None:
            return None
        self.scribbles.append(scribble)
        return "scribble", scribble.to_dict()

    def kwargs(self, previous: Any) -> dict[str, Any]:
        """``predict`` arguments: every prompt so far plus the previous result."""
        out: dict[str, Any] = {}
        if self.box is not None:
            out["box3d" if self.volume else "box"] = self.box
        if self.clicker.clicks:
            out["points"] = self.clicker.points
            out["point_labels"] = self.clicker.labels
        if self.scribbles:
            out["scribbles"] = list(self.scribbles)
        if previous is not None and self.protocol.use_mask_input:
            out["mask_input"] = previous
        return out


def _score(pred: np.ndarray, gt: np.ndarray, spacing, protocol: Protocol) -> tuple[float, ...]:
    from medseg.metrics import dice, nsd

    d = dice(pred, gt)
    iou = d / (2.0 - d)
    if protocol.nsd_min_dice is not None and d <= protocol.nsd_min_dice:
        n = 0.0
    else:
        n = nsd(pred, gt, spacing, protocol.nsd_tolerance_mm)
    return float(d), float(iou), float(n)


def _predict(predictor: Any, kwargs: dict, state: ModelState, protocol: Protocol) -> Any:
    kinds = _kinds(kwargs)
    if "scribbles" in kinds and not state.scribbles_ok:
        raise UnsupportedProtocol("the model does not declare the scribbles prompt kind")
    try:
        result = predictor.predict(**kwargs)
    except PromptError as exc:
        with state.lock:
            never_worked = kinds not in state.worked
        if never_worked:
            raise UnsupportedProtocol(str(exc)) from exc
        raise
    with state.lock:
        state.worked.add(kinds)
    return result


def _result_mask(result: Any, shape: tuple[int, ...]) -> np.ndarray:
    mask = np.asarray(getattr(result, "mask", result)).astype(bool)
    if mask.shape != tuple(shape):
        raise ValueError(f"model returned a mask of shape {mask.shape}, expected {tuple(shape)}")
    return mask


def _gallery_item(target: Target, proto: Protocol, sess: _Session, pred, dice: float):
    gt, image, box = target.mask, target.image, sess.box
    points = sess.clicker.points
    scribbles = sess.scribbles
    z = target.spec.slice_index
    if gt.ndim == 3:  # volume mode: show the target's largest slice
        z = int(np.argmax(gt.sum(axis=(1, 2))))
        gt, pred = gt[z], pred[z]
        image = slice_image(image, z)
        box = None if box is None else (box[0], box[1], box[3], box[4])
    return GalleryItem(
        target.spec, proto.name, dice, image, gt, pred, box, [tuple(p[:2]) for p in points],
        list(sess.clicker.labels), scribbles, z,
    )  # fmt: skip


def run_target(
    predictor: Any,
    target: Target,
    protocol: Protocol,
    rng: np.random.Generator,
    state: ModelState,
    on_done: Callable[[GalleryItem], None] | None = None,
) -> TargetResult:
    """Run ``protocol`` on one target with a predictor whose image is already set.

    Raises :class:`UnsupportedProtocol` when the model rejects the protocol's prompts;
    any other failure gives a result with ``status="error"``.
    """
    result = TargetResult(target.spec, protocol.name)
    try:
        sess = _Session(target, protocol, rng)
        previous = pred = None
        for step in range(protocol.max_interactions):
            prompt = sess.next_prompt(step, pred)
            if prompt is None:
                result.stopped = "perfect" if not np.any(pred != sess.gt) else "no unclicked error"
                break
            kwargs = sess.kwargs(previous)
            start = time.perf_counter()
            previous = _predict(predictor, kwargs, state, protocol)
            latency = time.perf_counter() - start
            pred = _result_mask(previous, sess.gt.shape)
            scores = _score(pred, sess.gt, target.spacing, protocol)
            result.steps.append(StepResult(step + 1, prompt[0], prompt[1], *scores, latency))
    except UnsupportedProtocol:
        raise
    except Exception as exc:  # a benchmark reports failures per target and goes on
        log.debug("target %s failed", target.spec.target_id, exc_info=True)
        result.status, result.reason = "error", f"{type(exc).__name__}: {exc}"
        return result
    if on_done is not None and result.steps:
        on_done(_gallery_item(target, protocol, sess, pred, result.steps[-1].dice))
    return result
