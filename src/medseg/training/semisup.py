"""Semi-supervised training with unlabelled images (``medseg auto train --unlabeled DIR``).

Method: a mean teacher (Tarvainen & Valpola 2017: the teacher is an exponential moving
average of the student's weights) with BCP's bidirectional copy-paste (Bai et al., CVPR
2023). Each step draws, next to the labelled batch ``x_l, y_l``, an unlabelled batch ``x_u``
(same size, same augmentation); the teacher labels ``x_u`` (argmax, no gradient) and each
pair is mixed with a random box mask ``M`` (a box of 2/3 of the patch per axis):

- even samples ("inward"): ``x_l * (1 - M) + x_u * M``, target ``y_l * (1 - M) + p_u * M``;
- odd samples ("outward"): ``x_u * (1 - M) + x_l * M``, target ``p_u * (1 - M) + y_l * M``.

The student is trained on the labelled batch with the usual loss plus ``w(t)`` times a
Dice/CE loss on the mixed batch (:func:`masked_dice_ce`), both in one forward pass (so DDP
sees one graph). The recipe (:class:`SemisupRecipe`, defaults :data:`RECIPE` chosen on a
validation split, see ``benchmarks/auto_semisup.py``) adds to BCP:

- a supervised warm-up: no unlabelled images for the first ``warmup_fraction`` of the
  iterations, then the teacher restarts as a copy of the student (BCP's pre-training stage);
- ``w(t)`` (:func:`unlabeled_weight_at`): 0 during the warm-up, then
  ``unlabeled_weight * exp(-5 (1 - t / T)^2)`` over ``T = rampup_fraction`` of the remaining
  iterations (Laine & Aila 2017);
- confidence masking: pseudo-labelled pixels whose teacher probability is below
  ``confidence`` do not count in the mixed loss (FixMatch);
- a strong intensity perturbation of the student's mixed input only (:func:`strong_perturb`,
  the teacher saw the weakly augmented image; FixMatch/UniMatch).

The teacher is updated after every optimiser step and checkpointed, so ``--resume``
continues exactly; the student is the model that is saved and predicts.

Unlabelled images are read like ``imagesTr`` (``<case>_0000<ending>``, one file per
channel), preprocessed with the plan into the fold's cache under the id
``unlabeled__<case>`` (image only, no label file).
"""

from __future__ import annotations

import copy
import json
import logging
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.errors import InputError
from medseg.io.atomic import atomic_path
from medseg.io.naming import IMAGE_ENDINGS, split_channel, split_ending
from medseg.training.cache import CachedCase
from medseg.training.data import PatchSampler
from medseg.training.semisup_mix import (
    BOX_FRACTION,
    EMA_DECAY,
    RAMPUP_FRACTION,
    SemisupRecipe,
    bidirectional_mix,
    box_mask,
    copy_paste,
    ema_update,
    masked_dice_ce,
    sigmoid_rampup,
    strong_perturb,
    teacher_pseudo_labels,
    unlabeled_weight_at,
    warmup_iterations,
)

__all__ = [
    "PREFIX",
    "EMA_DECAY",
    "RAMPUP_FRACTION",
    "BOX_FRACTION",
    "SemisupRecipe",
    "RECIPE",
    "find_unlabeled",
    "prepare_unlabeled",
    "load_unlabeled",
    "box_mask",
    "copy_paste",
    "bidirectional_mix",
    "sigmoid_rampup",
    "unlabeled_weight_at",
    "teacher_pseudo_labels",
    "strong_perturb",
    "masked_dice_ce",
    "ema_update",
    "semisup_summary",
    "MeanTeacherBCP",
    "build_semisup",
]

log = logging.getLogger(__name__)

#: Cache ids of unlabelled cases: ``PREFIX + case``.
PREFIX = "unlabeled__"

#: The recipe ``medseg auto train --unlabeled`` uses (defaults chosen by measurement).
RECIPE = SemisupRecipe()


# ---- data -------------------------------------------------------------------------------
def _channel_files(root: Path, ending: str) -> dict[str, dict[int, Path]]:
    """Case -> channel -> file of the images ``<case>_CCCC<ending>`` in ``root``; refuses a
    file with another image ending or named like a label (no channel suffix)."""
    groups: dict[str, dict[int, Path]] = defaultdict(dict)
    for f in sorted(root.iterdir()):
        parts = split_ending(f.name, (ending, *IMAGE_ENDINGS))
        if f.name.startswith(".") or not f.is_file() or parts is None:
            continue
        if parts[1].lower() != ending.lower():
            raise InputError(f"--unlabeled {f}: the dataset's images end with {ending}")
        chan = split_channel(parts[0])
        if chan is None:
            raise InputError(
                f"--unlabeled {f}: named like a label file (no _CCCC channel suffix); "
                f"unlabelled images are named <case>_0000{ending} as in imagesTr"
            )
        groups[chan[0]][chan[1]] = f
    return dict(groups)


def find_unlabeled(folder: str | Path, dataset: Any) -> list[Any]:
    """The unlabelled cases of ``folder``, checked against the labelled ``dataset``.

    ``folder`` holds images named like ``imagesTr`` (``<case>_0000<ending>``, one file per
    channel, the dataset's ``file_ending``). Returns ``CaseFiles`` without labels, sorted.

    Raises:
        InputError: the folder is missing or holds no image; it holds a label folder or a
            file named like a label (``<case><ending>``, no channel suffix); a case id is
            also a labelled case; a case's channel files are not ``0..C-1`` of the
            dataset's ``C`` channels.
    """
    from medseg.data.nnunet import CaseFiles

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputError(f"--unlabeled {root}: no such folder")
    ending = dataset.file_ending
    subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("label"))
    if subdirs:
        raise InputError(
            f"--unlabeled {root}: holds a label folder ({subdirs[0]}/); give a folder of "
            f"unlabelled images only (e.g. an imagesTs/)"
        )
    groups = _channel_files(root, ending)
    if not groups:
        raise InputError(f"--unlabeled {root}: no images <case>_0000{ending} found")
    labelled = {c.case_id for c in dataset.training}
    clash = sorted(set(groups) & labelled)
    if clash:
        raise InputError(
            f"--unlabeled {root}: {len(clash)} case(s) are labelled training cases too "
            f"({', '.join(clash[:5])}); the unlabelled folder must not repeat them"
        )
    want = list(range(dataset.num_channels))
    out = []
    for cid in sorted(groups):
        if sorted(groups[cid]) != want:
            found = [f"{c:04d}" for c in sorted(groups[cid])]
            raise InputError(
                f"--unlabeled {root}: case {cid} has channel files {found}, the dataset has "
                f"{dataset.num_channels} channel(s) ({want[0]:04d}..{want[-1]:04d})"
            )
        out.append(CaseFiles(cid, tuple(groups[cid][c] for c in want)))
    return out


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def prepare_unlabeled(
    folder: str | Path | None,
    data_dir: str | Path,
    model_dir: str | Path,
    *,
    preprocess: bool = True,
) -> tuple[str, ...]:
    """Check ``folder`` (:func:`find_unlabeled`) and preprocess its images with the plan of
    ``model_dir`` into ``model_dir/preprocessed`` (cached ones are skipped; call it after the
    labelled cases are preprocessed, which clears a stale cache). Returns the cache ids
    (``PREFIX + case``); ``()`` when ``folder`` is None. ``preprocess=False`` only lists
    them (the other DDP ranks).
    """
    if folder is None:
        return ()
    from tqdm import tqdm

    from medseg.automatic.plan import load_plan
    from medseg.automatic.preprocess import preprocess_image
    from medseg.data.nnunet import load_case, read_dataset

    dataset = read_dataset(data_dir)
    cases = find_unlabeled(folder, dataset)
    cache = Path(model_dir) / "preprocessed"
    ids = tuple(PREFIX + c.case_id for c in cases)
    if not preprocess:
        return ids
    plan = load_plan(Path(model_dir) / "plans.json")
    todo = [c for c in cases if not (cache / f"{PREFIX}{c.case_id}.json").is_file()]
    for case in tqdm(todo, desc="preprocess unlabelled", unit="case", disable=not todo):
        image, _ = load_case(dataset, case, with_label=False)
        data, geom = preprocess_image(image, plan)
        _save_npy(cache / f"{PREFIX}{case.case_id}.npy", data)
        with atomic_path(cache / f"{PREFIX}{case.case_id}.json") as tmp:  # "done" marker
            tmp.write_text(json.dumps(asdict(geom)) + "\n")
    log.info("%d unlabelled images from %s in %s", len(ids), folder, cache)
    return ids


def load_unlabeled(cache_dir: str | Path, cache_id: str) -> CachedCase:
    """An unlabelled cached case: ``data`` ``(C, *sp)`` (memory-mapped), an all-zero
    read-only ``seg`` view and no foreground locations."""
    cache = Path(cache_dir)
    if not (cache / f"{cache_id}.json").is_file():
        raise InputError(f"{cache}: unlabelled case {cache_id!r} is not preprocessed")
    data = np.load(cache / f"{cache_id}.npy", mmap_mode="r")
    seg = np.broadcast_to(np.zeros((), np.uint8), data.shape[1:])
    return CachedCase(cache_id, data, seg, {})


def semisup_summary(n_unlabeled: int, weight: float) -> dict[str, Any]:
    """What the plan/report records about the semi-supervised training (:data:`RECIPE`)."""
    return {
        "n_unlabeled": n_unlabeled,
        "method": "mean teacher + bidirectional copy-paste (BCP)",
        "unlabeled_weight": weight,
        **{k: round(v, 4) for k, v in asdict(RECIPE).items()},
    }


# ---- the trainer helper -----------------------------------------------------------------
class MeanTeacherBCP:
    """The semi-supervised part of a :class:`~medseg.training.trainer.Trainer` step.

    Uses the trainer's model, augmentation (``_batch``), RNGs (checkpointed) and patch size.
    Per step: :meth:`mixed_images` (teacher pseudo-labels, mixing; the trainer concatenates
    the result to its batch; an empty batch during the warm-up), :meth:`split` (labelled /
    mixed outputs), :meth:`loss` (weighted :func:`masked_dice_ce` on the mixed batch),
    :meth:`update_teacher` after the step. ``recipe`` defaults to :data:`RECIPE`.
    """

    def __init__(
        self, trainer: Any, cases: list[CachedCase], recipe: SemisupRecipe | None = None
    ) -> None:
        self.trainer = trainer
        self.recipe = RECIPE if recipe is None else recipe
        self.weight = float(trainer.cfg.unlabeled_weight)
        self.sampler = PatchSampler(cases, trainer.sampler.patch_size, 0.0, trainer.rng)
        self.teacher = copy.deepcopy(trainer.model).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.n = 0
        self._target: torch.Tensor | None = None
        self._keep: torch.Tensor | None = None

    @property
    def warmup(self) -> int:
        """Labels-only iterations at the start."""
        return warmup_iterations(self.trainer.total, self.recipe)

    def mixed_images(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(B, C, *patch)`` mixed images of the labelled batch ``x, y`` and a fresh
        unlabelled batch (``(0, C, *patch)`` during the warm-up); their targets and kept
        pixels are kept for :meth:`loss`. At the warm-up's end the teacher restarts as a
        copy of the student."""
        tr, r = self.trainer, self.recipe
        self.n = x.shape[0]
        if tr.iteration < self.warmup:
            self._target = None
            return x[:0]
        if tr.iteration == self.warmup and self.warmup > 0:
            self.teacher.load_state_dict(tr.model.state_dict())
        self.sampler.rng = tr.rng  # the trainer's (checkpointed) stream, also after a resume
        x_u, _ = tr._batch(x.shape[0], self.sampler, augment=True)
        with torch.no_grad():
            p_u, keep_u = teacher_pseudo_labels(self.teacher(x_u), r.confidence)
        mask = box_mask((x.shape[0], *x.shape[2:]), r.box_fraction, tr.gen).to(x.device)
        mixed, self._target = bidirectional_mix(x, y, x_u, p_u, mask)
        _, self._keep = bidirectional_mix(x, torch.ones_like(keep_u), x_u, keep_u, mask)
        return strong_perturb(mixed, r.strong, tr.gen)

    def split(self, outs: Any) -> tuple[Any, Any]:
        """``(labelled, mixed)`` parts of the outputs of the concatenated batch (a list of
        deep-supervision heads or one tensor, batch first)."""
        n = self.n
        if isinstance(outs, list | tuple):
            return [o[:n] for o in outs], [o[n:] for o in outs]
        return outs[:n], outs[n:]

    def loss(self, mixed_outs: Any) -> torch.Tensor:
        """Scheduled weight times :func:`masked_dice_ce` of the mixed outputs (0 during the
        warm-up)."""
        tr = self.trainer
        w = unlabeled_weight_at(tr.iteration, tr.total, self.weight, self.recipe)
        if self._target is None or w == 0.0:
            return torch.zeros((), device=tr.device)
        return w * masked_dice_ce(mixed_outs, self._target, self._keep)

    def update_teacher(self) -> None:
        """EMA step of the teacher (call after the optimiser step; counts the steps since
        the warm-up's end)."""
        done = self.trainer.iteration + 1 - self.warmup
        ema_update(self.teacher, self.trainer.model, self.recipe.ema_decay, max(done, 1))

    def state_dict(self) -> dict[str, Any]:
        return self.teacher.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore the teacher; None (a checkpoint without one) restarts it from the student."""
        src = self.trainer.model.state_dict() if state is None else state
        self.teacher.load_state_dict(src)


def build_semisup(trainer: Any, cache_dir: str | Path) -> MeanTeacherBCP | None:
    """The helper for ``trainer`` when its config lists unlabelled cases, else None."""
    ids = list(trainer.cfg.unlabeled)
    if not ids:
        return None
    if trainer.partial:
        raise InputError("--unlabeled cannot be combined with partial labels yet")
    cases = [load_unlabeled(cache_dir, c) for c in ids]
    log.info(
        "semi-supervised: %d unlabelled cases, weight %g, %s",
        len(ids),
        trainer.cfg.unlabeled_weight,
        RECIPE,
    )
    return MeanTeacherBCP(trainer, cases)
