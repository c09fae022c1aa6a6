"""Plan the targets of every dataset, then run each model over them (optionally in parallel).

Per model: the Predictor is created (timed), the peak RSS is reset (see
:mod:`medseg.bench.resources`), then every case is loaded, each distinct image (2D image,
3D slice or volume) is given to ``set_image`` once (timed), and every target runs every
protocol. ``jobs > 1`` runs cases in worker threads, each with its own Predictor; latencies
then include contention for the CPU.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from medseg.bench.data import (
    CaseRef,
    DatasetRef,
    Skip,
    TargetSpec,
    load_pair,
    materialize,
    plan_case,
)
from medseg.bench.protocols import BenchConfig
from medseg.bench.resources import PeakMemory
from medseg.bench.runner import (
    GalleryItem,
    ModelState,
    TargetResult,
    UnsupportedProtocol,
    run_target,
    target_rng,
)
from medseg.errors import MedsegError

__all__ = ["PlannedCase", "CaseRun", "ModelRun", "plan", "run_model", "default_factory"]

log = logging.getLogger(__name__)

PredictorFactory = Callable[[str], Any]


@dataclass(frozen=True)
class PlannedCase:
    """A case that passed the checks, with its targets."""

    dataset: DatasetRef
    case: CaseRef
    specs: tuple[TargetSpec, ...]


@dataclass
class CaseRun:
    """One case under one model: ``set_image`` times and results per protocol name."""

    dataset: str
    case_id: str
    set_image_s: list[float] = field(default_factory=list)
    results: dict[str, list[TargetResult]] = field(default_factory=lambda: defaultdict(list))
    status: str = "ok"
    reason: str | None = None

    def runtime_s(self, protocol: str) -> float:
        """``set_image`` plus every ``predict`` of this protocol on this case, in seconds."""
        steps = (s.latency_s for r in self.results.get(protocol, []) for s in r.steps)
        return float(sum(self.set_image_s) + sum(steps))


@dataclass
class ModelRun:
    """Everything measured for one model."""

    model: str
    status: str = "ok"
    reason: str | None = None
    load_s: float | None = None
    memory: dict[str, Any] = field(default_factory=dict)
    cases: list[CaseRun] = field(default_factory=list)
    unsupported: dict[str, str] = field(default_factory=dict)
    gallery: dict[str, list[GalleryItem]] = field(default_factory=dict)


def default_factory(name: str) -> Any:
    """``medseg.Predictor(name)`` without the 3D progress bar."""
    from medseg.inference import Predictor

    return Predictor(name, progress=False)


def plan(
    datasets: Sequence[DatasetRef], config: BenchConfig, progress: bool = True
) -> tuple[list[PlannedCase], list[Skip]]:
    """Check every case (at most ``config.limit`` per dataset) and list its targets."""
    from tqdm import tqdm

    planned: list[PlannedCase] = []
    skips: list[Skip] = []
    todo = [(ds, c) for ds in datasets for c in ds.cases[: config.limit]]
    for ds, case in tqdm(
        todo, desc="checking cases", unit="case", disable=None if progress else True
    ):
        try:
            _, label = load_pair(ds, case)
        except MedsegError as exc:
            log.warning("%s/%s: skipped: %s", ds.name, case.case_id, exc)
            skips.append(Skip(ds.name, case.case_id, str(exc)))
            continue
        rng = target_rng(config.seed, TargetSpec(ds.name, case.case_id, "", 0, None, None, None, 0))
        volume = config.volume and label.ndim == 3
        specs, small = plan_case(
            ds, label, case.case_id, components=config.components, min_area=config.min_area,
            max_targets=config.max_targets_per_case, volume=volume, rng=rng,
        )  # fmt: skip
        skips.extend(small)
        if specs:
            planned.append(PlannedCase(ds, case, tuple(specs)))
        else:
            skips.append(Skip(ds.name, case.case_id, "no target left after --min-area"))
    return planned, skips


class _Worst:
    """The ``k`` lowest-Dice gallery items per protocol (thread-safe)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.heaps: dict[str, list] = defaultdict(list)
        self.counter = itertools.count()
        self.lock = threading.Lock()

    def add(self, item: GalleryItem) -> None:
        if self.k == 0:
            return
        with self.lock:
            heap = self.heaps[item.protocol]
            entry = (-item.dice, next(self.counter), item)
            if len(heap) < self.k:
                heapq.heappush(heap, entry)
            elif -item.dice > heap[0][0]:
                heapq.heapreplace(heap, entry)

    def items(self) -> dict[str, list[GalleryItem]]:
        """Items per protocol, worst (lowest Dice) first."""
        order = {p: sorted(h, key=lambda e: (-e[0], e[1])) for p, h in self.heaps.items()}
        return {p: [e[2] for e in entries] for p, entries in order.items()}


def _run_target_protocols(predictor: Any, target: Any, config: BenchConfig, state: ModelState,
                          worst: _Worst, case: CaseRun) -> None:  # fmt: skip
    for proto in config.protocols:
        if proto.name in state.unsupported:
            continue
        rng = target_rng(config.seed, target.spec)
        try:
            res = run_target(predictor, target, proto, rng, state, worst.add)
        except UnsupportedProtocol as exc:
            with state.lock:
                state.unsupported.setdefault(proto.name, str(exc))
            continue
        case.results[proto.name].append(res)


def _run_case(predictor: Any, pc: PlannedCase, config: BenchConfig, state: ModelState,
              worst: _Worst, bar: Any) -> CaseRun:  # fmt: skip
    """Load a case, give each distinct image to ``set_image`` once, run every target."""
    case = CaseRun(pc.dataset.name, pc.case.case_id)
    current, failed = None, False
    try:
        image, label = load_pair(pc.dataset, pc.case)
        for target in materialize(image, label, list(pc.specs)):
            if target.image is not current:  # targets come grouped by image
                current, failed = target.image, False
                start = time.perf_counter()
                try:
                    predictor.set_image(current)
                except Exception as exc:  # report the model's failure on this image, go on
                    case.status, case.reason = "error", f"set_image: {type(exc).__name__}: {exc}"
                    failed = True
                else:
                    case.set_image_s.append(time.perf_counter() - start)
            if not failed:
                _run_target_protocols(predictor, target, config, state, worst, case)
            bar.update(1)
    except MedsegError as exc:
        case.status, case.reason = "error", str(exc)
    return case


def run_model(
    name: str,
    planned: Sequence[PlannedCase],
    config: BenchConfig,
    factory: PredictorFactory = default_factory,
    progress: bool = True,
) -> ModelRun:
    """Run every protocol of ``config`` with model ``name`` on the planned cases."""
    from tqdm import tqdm

    run = ModelRun(name)
    memory = PeakMemory()
    memory.reset()
    start = time.perf_counter()
    try:
        predictors = [factory(name) for _ in range(max(1, min(config.jobs, len(planned))))]
    except MedsegError as exc:
        run.status, run.reason = "failed", str(exc)
        log.error("model %s: %s", name, exc)
        return run
    run.load_s = time.perf_counter() - start
    state = ModelState.for_predictor(predictors[0])
    worst = _Worst(config.gallery_size)
    total = sum(len(pc.specs) for pc in planned)
    with tqdm(total=total, desc=name, unit="target", disable=None if progress else True) as bar:
        if len(predictors) == 1:
            run.cases = [_run_case(predictors[0], pc, config, state, worst, bar) for pc in planned]
        else:
            pool: queue.Queue = queue.Queue()
            for p in predictors:
                pool.put(p)

            def work(pc: PlannedCase) -> CaseRun:
                predictor = pool.get()
                try:
                    return _run_case(predictor, pc, config, state, worst, bar)
                finally:
                    pool.put(predictor)

            with ThreadPoolExecutor(max_workers=len(predictors)) as ex:
                run.cases = list(ex.map(work, planned))
    run.memory = {
        "peak_rss_mb": memory.peak_mb(),
        "baseline_rss_mb": memory.baseline_mb,
        "method": memory.method,
    }
    run.unsupported = dict(state.unsupported)
    run.gallery = worst.items()
    return run
