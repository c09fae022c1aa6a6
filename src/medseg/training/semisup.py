"""Semi-supervised training with unlabelled images (``medseg auto train --unlabeled DIR``).

Method: a mean teacher (Tarvainen & Valpola 2017: the teacher is an exponential moving
average of the student's weights) with BCP's bidirectional copy-paste (Bai et al., CVPR
2023). Each step draws, next to the labelled batch ``x_l, y_l``, an unlabelled batch ``x_u``
(same size, same augmentation); the teacher labels ``x_u`` (argmax, no gradient) and each
pair is mixed with a random box mask ``M`` (a box of 2/3 of the patch per axis):

- even samples ("inward"): ``x_l * (1 - M) + x_u * M``, target ``y_l * (1 - M) + p_u * M``;
- odd samples ("outward"): ``x_u * (1 - M) + x_l * M``, target ``p_u * (1 - M) + y_l * M``.

The student is trained on the labelled batch with the usual loss plus ``w(t)`` times the
same Dice/CE loss on the mixed batch, both in one forward pass (so DDP sees one graph);
``w(t) = unlabeled_weight * exp(-5 (1 - t / T)^2)`` ramps up over the first
:data:`RAMPUP_FRACTION` of the iterations (Laine & Aila 2017). The teacher is updated after
every optimiser step and checkpointed, so ``--resume`` continues exactly; the student is
the model that is saved and predicts.

Unlabelled images are read like ``imagesTr`` (``<case>_0000<ending>``, one file per
channel), preprocessed with the plan into the fold's cache under the id
``unlabeled__<case>`` (image only, no label file).
"""

from __future__ import annotations

import copy
import json
import logging
import math
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

__all__ = [
    "PREFIX",
    "EMA_DECAY",
    "RAMPUP_FRACTION",
    "BOX_FRACTION",
    "find_unlabeled",
    "prepare_unlabeled",
    "load_unlabeled",
    "box_mask",
    "copy_paste",
    "bidirectional_mix",
    "sigmoid_rampup",
    "ema_update",
    "semisup_summary",
    "MeanTeacherBCP",
    "build_semisup",
]

log = logging.getLogger(__name__)

#: Cache ids of unlabelled cases: ``PREFIX + case``.
PREFIX = "unlabeled__"
#: Teacher weight decay of the EMA (BCP and Mean Teacher use 0.99).
EMA_DECAY = 0.99
#: The unlabelled loss weight ramps up over this share of the training iterations.
RAMPUP_FRACTION = 0.3
#: Side of the copy-paste box, as a share of the patch side (BCP: 2/3).
BOX_FRACTION = 2 / 3


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


# ---- mixing, ramp, EMA ------------------------------------------------------------------
def box_mask(shape: tuple[int, ...], fraction: float, gen: torch.Generator) -> torch.Tensor:
    """``(B, 1, *sp)`` float mask of one random box per sample (1 inside, 0 outside).

    ``shape`` is ``(B, *sp)``; the box side on each axis is ``round(fraction * side)``
    (at least 1), its corner uniform over the positions that keep it inside.
    """
    b, spatial = shape[0], shape[1:]
    mask = torch.zeros((b, 1, *spatial))
    for i in range(b):
        box = []
        for side in spatial:
            size = min(side, max(1, round(fraction * side)))
            start = int(torch.randint(0, side - size + 1, (1,), generator=gen))
            box.append(slice(start, start + size))
        mask[(i, 0, *box)] = 1.0
    return mask


def copy_paste(
    base_img: torch.Tensor,
    base_lab: torch.Tensor,
    src_img: torch.Tensor,
    src_lab: torch.Tensor,
    mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste the box ``mask == 1`` of ``src`` into ``base``.

    Images ``(B, C, *sp)`` float, labels ``(B, 1, *sp)`` int64, ``mask`` ``(B, 1, *sp)``
    of 0/1. Returns ``base_img * (1 - mask) + src_img * mask`` and the label taken from
    ``src_lab`` inside the box and ``base_lab`` outside.
    """
    img = base_img * (1 - mask) + src_img * mask
    lab = torch.where(mask.bool(), src_lab, base_lab)
    return img, lab


def bidirectional_mix(
    x_l: torch.Tensor,
    y_l: torch.Tensor,
    x_u: torch.Tensor,
    p_u: torch.Tensor,
    mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BCP mixing of labelled ``(x_l, y_l)`` and unlabelled ``(x_u, p_u)`` (pseudo-label).

    Sample ``i`` pairs labelled ``i`` with unlabelled ``i``: even ``i`` paste the
    unlabelled box into the labelled image ("inward"), odd ``i`` the labelled box into the
    unlabelled image ("outward"). Shapes as in :func:`copy_paste`.
    """
    inward, in_lab = copy_paste(x_l, y_l, x_u, p_u, mask)
    outward, out_lab = copy_paste(x_u, p_u, x_l, y_l, mask)
    even = (torch.arange(x_l.shape[0]) % 2 == 0).view(-1, *[1] * (x_l.ndim - 1))
    return torch.where(even, inward, outward), torch.where(even, in_lab, out_lab)


def sigmoid_rampup(iteration: int, length: float) -> float:
    """``exp(-5 (1 - t)^2)`` for ``t = iteration / length`` clipped to [0, 1]; 1.0 when
    ``length <= 0``."""
    if length <= 0:
        return 1.0
    t = min(max(iteration / length, 0.0), 1.0)
    return float(math.exp(-5.0 * (1.0 - t) ** 2))


@torch.no_grad()
def ema_update(
    teacher: torch.nn.Module, student: torch.nn.Module, decay: float, iteration: int
) -> float:
    """``teacher = a * teacher + (1 - a) * student`` per parameter, with
    ``a = min(1 - 1 / (iteration + 1), decay)`` (fast at the start); buffers are copied.
    Returns ``a``. ``iteration``: optimiser steps done (1 after the first)."""
    a = min(1.0 - 1.0 / (iteration + 1), decay)
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(a).add_(s.detach(), alpha=1.0 - a)
    for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
        t.copy_(s)
    return a


def semisup_summary(n_unlabeled: int, weight: float) -> dict[str, Any]:
    """What the plan/report records about the semi-supervised training."""
    return {
        "n_unlabeled": n_unlabeled,
        "method": "mean teacher + bidirectional copy-paste (BCP)",
        "unlabeled_weight": weight,
        "ema_decay": EMA_DECAY,
        "rampup_fraction": RAMPUP_FRACTION,
        "box_fraction": round(BOX_FRACTION, 4),
    }


# ---- the trainer helper -----------------------------------------------------------------
class MeanTeacherBCP:
    """The semi-supervised part of a :class:`~medseg.training.trainer.Trainer` step.

    Uses the trainer's model, loss, augmentation (``_batch``), RNGs (checkpointed) and patch
    size. Per step: :meth:`mixed_images` (teacher pseudo-labels, mixing; the trainer
    concatenates the result to its batch), :meth:`split` (labelled / mixed outputs),
    :meth:`loss` (ramped Dice/CE on the mixed batch), :meth:`update_teacher` after the step.
    """

    def __init__(self, trainer: Any, cases: list[CachedCase]) -> None:
        self.trainer = trainer
        self.weight = float(trainer.cfg.unlabeled_weight)
        self.sampler = PatchSampler(cases, trainer.sampler.patch_size, 0.0, trainer.rng)
        self.teacher = copy.deepcopy(trainer.model).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.n = 0
        self._target: torch.Tensor | None = None

    def mixed_images(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(B, C, *patch)`` mixed images of the labelled batch ``x, y`` and a fresh
        unlabelled batch; their targets are kept for :meth:`loss`."""
        tr = self.trainer
        self.sampler.rng = tr.rng  # the trainer's (checkpointed) stream, also after a resume
        x_u, _ = tr._batch(x.shape[0], self.sampler, augment=True)
        with torch.no_grad():
            p_u = self.teacher(x_u).argmax(1, keepdim=True)
        mask = box_mask((x.shape[0], *x.shape[2:]), BOX_FRACTION, tr.gen).to(x.device)
        mixed, self._target = bidirectional_mix(x, y, x_u, p_u, mask)
        self.n = x.shape[0]
        return mixed

    def split(self, outs: Any) -> tuple[Any, Any]:
        """``(labelled, mixed)`` parts of the outputs of the concatenated batch (a list of
        deep-supervision heads or one tensor, batch first)."""
        n = self.n
        if isinstance(outs, list | tuple):
            return [o[:n] for o in outs], [o[n:] for o in outs]
        return outs[:n], outs[n:]

    def loss(self, mixed_outs: Any) -> torch.Tensor:
        """Ramped weight times the trainer's Dice/CE of the mixed outputs."""
        tr = self.trainer
        w = self.weight * sigmoid_rampup(tr.iteration, RAMPUP_FRACTION * tr.total)
        return w * tr.loss_fn(mixed_outs, self._target)

    def update_teacher(self) -> None:
        """EMA step of the teacher (call after the optimiser step)."""
        ema_update(self.teacher, self.trainer.model, EMA_DECAY, self.trainer.iteration + 1)

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
        "semi-supervised: %d unlabelled cases, weight %g", len(ids), trainer.cfg.unlabeled_weight
    )
    return MeanTeacherBCP(trainer, cases)
