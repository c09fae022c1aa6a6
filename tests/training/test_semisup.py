"""Semi-supervised training (``--unlabeled``): copy-paste mixing, EMA teacher, ramp and
warm-up, confidence masking, strong perturbation, the masked loss, folder checks, and a
small run through the CLI with an exact resume."""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from medseg.automatic.plan import PlanBudget, save_plan
from medseg.cli.main import main
from medseg.data.nnunet import read_dataset
from medseg.errors import InputError
from medseg.training.cache import CachedCase, preprocess_dataset
from medseg.training.fingerprint import compute_fingerprint
from medseg.training.planning import plan_experiment
from medseg.training.semisup import (
    PREFIX,
    MeanTeacherBCP,
    bidirectional_mix,
    box_mask,
    copy_paste,
    ema_update,
    find_unlabeled,
    prepare_unlabeled,
    sigmoid_rampup,
)
from medseg.training.semisup_mix import (
    SemisupRecipe,
    masked_dice_ce,
    strong_perturb,
    teacher_pseudo_labels,
    unlabeled_weight_at,
    warmup_iterations,
)
from medseg.training.synthetic import write_disk_dataset
from medseg.training.trainer import TrainConfig, Trainer


def _pair() -> tuple[torch.Tensor, ...]:
    """Two samples (B=2) of 1x2x3 images/labels: labelled values 1.., unlabelled 10.., and a
    box covering columns 1-2 of row 0 (sample 0) and column 0 of both rows (sample 1)."""
    x_l = torch.arange(1.0, 13.0).view(2, 1, 2, 3)
    y_l = torch.tensor([[[1, 1, 1], [0, 0, 0]], [[2, 2, 2], [2, 0, 0]]]).view(2, 1, 2, 3)
    x_u = torch.arange(10.0, 130.0, 10.0).view(2, 1, 2, 3)
    p_u = torch.tensor([[[0, 2, 0], [0, 0, 2]], [[1, 1, 0], [0, 0, 1]]]).view(2, 1, 2, 3)
    m = torch.tensor([[[0, 1, 1], [0, 0, 0]], [[1, 0, 0], [1, 0, 0]]], dtype=torch.float32)
    return x_l, y_l, x_u, p_u, m.view(2, 1, 2, 3)


def test_copy_paste_exact() -> None:
    x_l, y_l, x_u, p_u, m = _pair()
    img, lab = copy_paste(x_l, y_l, x_u, p_u, m)
    assert img[0, 0].tolist() == [[1.0, 20.0, 30.0], [4.0, 5.0, 6.0]]
    assert lab[0, 0].tolist() == [[1, 2, 0], [0, 0, 0]]
    assert img[1, 0].tolist() == [[70.0, 8.0, 9.0], [100.0, 11.0, 12.0]]
    assert lab[1, 0].tolist() == [[1, 2, 2], [0, 0, 0]]
    assert lab.dtype == torch.int64


def test_bidirectional_mix_alternates_direction() -> None:
    """Sample 0: unlabelled box into the labelled image; sample 1: labelled box into the
    unlabelled image (same mask)."""
    x_l, y_l, x_u, p_u, m = _pair()
    img, lab = bidirectional_mix(x_l, y_l, x_u, p_u, m)
    assert img[0, 0].tolist() == [[1.0, 20.0, 30.0], [4.0, 5.0, 6.0]]
    assert lab[0, 0].tolist() == [[1, 2, 0], [0, 0, 0]]
    assert img[1, 0].tolist() == [[7.0, 80.0, 90.0], [10.0, 110.0, 120.0]]
    assert lab[1, 0].tolist() == [[2, 1, 0], [2, 0, 1]]


def test_box_mask_size_and_bounds() -> None:
    g = torch.Generator().manual_seed(3)
    m = box_mask((5, 6, 9), 2 / 3, g)
    assert m.shape == (5, 1, 6, 9) and set(m.unique().tolist()) == {0.0, 1.0}
    for i in range(5):
        rows = m[i, 0].any(1).nonzero().flatten().tolist()
        cols = m[i, 0].any(0).nonzero().flatten().tolist()
        assert len(rows) == 4 and len(cols) == 6  # round(2/3 * 6), round(2/3 * 9)
        assert rows == list(range(rows[0], rows[0] + 4))
        assert m[i].sum() == 24  # one solid box
    again = box_mask((5, 6, 9), 2 / 3, torch.Generator().manual_seed(3))
    assert torch.equal(m, again)
    assert box_mask((1, 2, 2, 2), 0.1, g).sum() == 1  # at least one voxel per axis


def test_sigmoid_rampup_values() -> None:
    assert sigmoid_rampup(0, 100) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(50, 100) == pytest.approx(math.exp(-1.25))
    assert sigmoid_rampup(100, 100) == 1.0 and sigmoid_rampup(250, 100) == 1.0
    assert sigmoid_rampup(5, 0) == 1.0


def test_ema_update_exact() -> None:
    student = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    teacher = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    with torch.no_grad():
        student[0].weight.copy_(torch.tensor([[1.0, 3.0]]))
        student[0].bias.fill_(2.0)
        teacher[0].weight.copy_(torch.tensor([[5.0, -1.0]]))
        teacher[0].bias.fill_(0.0)
        student[1].running_mean.fill_(7.0)
    a = ema_update(teacher, student, 0.99, 1)  # first step: a = min(1 - 1/2, 0.99)
    assert a == 0.5
    assert teacher[0].weight.tolist() == [[3.0, 1.0]] and teacher[0].bias.tolist() == [1.0]
    assert teacher[1].running_mean.tolist() == [7.0]  # buffers copied
    a = ema_update(teacher, student, 0.75, 10)  # later: the decay caps it
    assert a == 0.75
    assert teacher[0].weight.tolist() == [[2.5, 1.5]] and teacher[0].bias.tolist() == [1.25]
    assert student[0].weight.tolist() == [[1.0, 3.0]]  # student untouched


def test_recipe_refuses_out_of_range_settings() -> None:
    for bad in ({"confidence": 1.5}, {"warmup_fraction": 1.0}, {"strong": -0.1},
                {"box_fraction": 0.0}, {"ema_decay": -0.5}):  # fmt: skip
        with pytest.raises(InputError, match="semi-supervised"):
            SemisupRecipe(**bad)


def test_warmup_schedule_exact() -> None:
    """100 iterations, warm-up 20 % (W = 20), ramp over half of the remaining 80 (T = 40)."""
    r = SemisupRecipe(warmup_fraction=0.2, rampup_fraction=0.5)
    assert warmup_iterations(100, r) == 20
    assert unlabeled_weight_at(0, 100, 2.0, r) == 0.0
    assert unlabeled_weight_at(19, 100, 2.0, r) == 0.0
    assert unlabeled_weight_at(20, 100, 2.0, r) == pytest.approx(2.0 * math.exp(-5.0))
    assert unlabeled_weight_at(40, 100, 2.0, r) == pytest.approx(2.0 * math.exp(-1.25))
    assert unlabeled_weight_at(60, 100, 2.0, r) == 2.0
    assert unlabeled_weight_at(99, 100, 2.0, r) == 2.0
    plain = SemisupRecipe(warmup_fraction=0.0, rampup_fraction=0.3)  # the old ramp
    assert unlabeled_weight_at(15, 100, 1.0, plain) == pytest.approx(sigmoid_rampup(15, 30))


def test_teacher_pseudo_labels_confidence_mask() -> None:
    """Pixel probabilities of class 1: 0.5 (tie -> class 0), 0.9, 0.2 (class 0 at 0.8)."""
    logits = torch.tensor([[0.0, 0.0, math.log(4.0)], [0.0, math.log(9.0), 0.0]])
    logits = logits.view(1, 2, 1, 3)
    label, keep = teacher_pseudo_labels(logits, 0.85)
    assert label.tolist() == [[[[0, 1, 0]]]] and label.dtype == torch.int64
    assert keep.tolist() == [[[[0.0, 1.0, 0.0]]]]
    assert teacher_pseudo_labels(logits, 0.8)[1].tolist() == [[[[0.0, 1.0, 1.0]]]]
    assert teacher_pseudo_labels(logits, 0.0)[1].tolist() == [[[[1.0, 1.0, 1.0]]]]


def test_strong_perturb_exact() -> None:
    x = torch.tensor([[[[0.0, 2.0]]], [[[1.0, 1.0]]]])  # (2, 1, 1, 2), means 1 and 1
    assert strong_perturb(x, 0.0, torch.Generator()) is x
    gen = torch.Generator().manual_seed(3)
    out = strong_perturb(x, 0.4, gen)
    ref = torch.Generator().manual_seed(3)
    c = 1.0 + 0.4 * (2.0 * torch.rand(2, generator=ref) - 1.0)
    b = 0.4 * (2.0 * torch.rand(2, generator=ref) - 1.0)
    n = torch.randn((2, 1, 1, 2), generator=ref) * 0.2
    for i in range(2):
        want = (x[i] - 1.0) * c[i] + 1.0 + b[i] + n[i]
        assert torch.allclose(out[i], want, atol=1e-6)
    assert out[1, 0, 0, 0] - n[1, 0, 0, 0] == pytest.approx(1.0 + float(b[1]), abs=1e-6)


def test_masked_dice_ce_exact_values() -> None:
    """Zero logits (p = 0.5 everywhere), target [1, 0]: Dice 1 - (2 * 0.5) / 2 with both
    pixels, 1 - 1 / 1.5 with the second masked out; CE ln 2 either way."""
    logits = torch.zeros(1, 2, 1, 2)
    target = torch.tensor([[[[1, 0]]]])
    both = masked_dice_ce(logits, target, torch.ones(1, 1, 1, 2), eps=0.0)
    assert float(both) == pytest.approx(0.5 + math.log(2.0))
    first = masked_dice_ce(logits, target, torch.tensor([[[[1.0, 0.0]]]]), eps=0.0)
    assert float(first) == pytest.approx(1.0 - 1.0 / 1.5 + math.log(2.0))
    none = masked_dice_ce(logits, target, torch.zeros(1, 1, 1, 2), eps=1e-5)
    assert float(none) == pytest.approx(0.0)  # Dice (0 + eps) / (0 + eps), CE of no pixel


def test_masked_dice_ce_matches_monai_with_everything_kept() -> None:
    from monai.losses import DeepSupervisionLoss, DiceCELoss

    gen = torch.Generator().manual_seed(0)
    heads = [torch.randn(2, 3, 8, 8, generator=gen), torch.randn(2, 3, 4, 4, generator=gen)]
    target = torch.randint(0, 3, (2, 1, 8, 8), generator=gen)
    dice_ce = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
    ref = DeepSupervisionLoss(dice_ce, weight_mode="exp")
    keep = torch.ones(2, 1, 8, 8)
    ref_loss = float(ref(heads, target.float()))  # MONAI resizes float targets
    assert float(masked_dice_ce(heads, target, keep)) == pytest.approx(ref_loss)
    assert float(masked_dice_ce(heads[0], target, keep)) == pytest.approx(
        float(dice_ce(heads[0], target))
    )


class _FakeTrainer:
    """What :class:`MeanTeacherBCP` uses of a trainer: a 1x1 conv model, fixed batches."""

    def __init__(self, total: int) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Conv2d(1, 2, 1)
        self.cfg = type("Cfg", (), {"unlabeled_weight": 1.0})()
        self.sampler = type("S", (), {"patch_size": (2, 2)})()
        self.rng, self.gen = None, torch.Generator().manual_seed(0)
        self.total, self.iteration, self.device = total, 0, torch.device("cpu")

    def _batch(self, n: int, sampler: object, augment: bool) -> tuple[torch.Tensor, None]:
        return torch.full((n, 1, 2, 2), 3.0), None


def test_mean_teacher_warmup_then_teacher_restarts_from_student() -> None:
    tr = _FakeTrainer(total=10)
    case = CachedCase("u", torch.zeros(1, 2, 2).numpy(), torch.zeros(2, 2).numpy(), {})
    semi = MeanTeacherBCP(tr, [case], SemisupRecipe(warmup_fraction=0.3, confidence=0.0))
    assert semi.warmup == 3
    x, y = torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2, dtype=torch.long)
    tr.iteration = 2  # warm-up: no unlabelled batch, zero loss
    assert semi.mixed_images(x, y).shape == (0, 1, 2, 2)
    assert float(semi.loss(torch.zeros(0, 2, 2, 2))) == 0.0
    with torch.no_grad():
        tr.model.weight.fill_(0.25)  # the student moved during the warm-up
    tr.iteration = 3  # first semi-supervised step: teacher = student
    mixed = semi.mixed_images(x, y)
    assert mixed.shape == (2, 1, 2, 2)
    assert torch.equal(semi.teacher.weight, tr.model.weight)
    assert float(semi.loss(torch.zeros(2, 2, 2, 2))) > 0.0


def test_mean_teacher_confidence_keeps_only_labelled_pixels_when_unsure() -> None:
    """confidence 1.0: no pseudo-labelled pixel is kept; the 1x1 box (2/3 of 2 rounds to 1)
    is unlabelled in sample 0 (3 labelled pixels kept) and labelled in sample 1 (1 kept)."""
    tr = _FakeTrainer(total=10)
    case = CachedCase("u", torch.zeros(1, 2, 2).numpy(), torch.zeros(2, 2).numpy(), {})
    semi = MeanTeacherBCP(tr, [case], SemisupRecipe(confidence=1.0))
    x, y = torch.ones(2, 1, 2, 2), torch.ones(2, 1, 2, 2, dtype=torch.long)
    semi.mixed_images(x, y)
    keep = semi._keep
    assert sorted(set(keep.flatten().tolist())) == [0.0, 1.0]
    assert keep.sum(dim=(1, 2, 3)).tolist() == [3.0, 1.0]
    assert torch.equal(semi._target[keep.bool()], torch.ones(4, dtype=torch.long))
    loss = semi.loss(torch.zeros(2, 2, 2, 2))
    assert float(loss) >= 0.0


@pytest.fixture(scope="module")
def disks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 labelled 32x32 disk images and 3 unlabelled ones in imagesTs."""
    return write_disk_dataset(tmp_path_factory.mktemp("d") / "ds", 6, (32, 32), n_test=3)


def test_find_unlabeled_accepts_images_ts(disks: Path) -> None:
    cases = find_unlabeled(disks / "imagesTs", read_dataset(disks))
    assert [c.case_id for c in cases] == ["case06", "case07", "case08"]
    assert cases[0].images == (disks / "imagesTs" / "case06_0000.png",) and cases[0].label is None


def _folder(tmp_path: Path, disks: Path, names: list[str]) -> Path:
    out = tmp_path / "unl"
    out.mkdir()
    for name in names:
        shutil.copyfile(disks / "imagesTs" / "case06_0000.png", out / name)
    return out


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ([], "no images <case>_0000.png found"),
        (["x_0000.png", "x.png"], "x.png: named like a label file (no _CCCC channel suffix)"),
        (["case01_0000.png"], "1 case(s) are labelled training cases too (case01)"),
        (["x_0000.png", "x_0001.png"], "case x has channel files ['0000', '0001']"),
        (["x_0001.png"], "case x has channel files ['0001'], the dataset has 1 channel(s)"),
        (["x_0000.nii.gz"], "the dataset's images end with .png"),
    ],
)
def test_find_unlabeled_refuses_bad_folders(
    tmp_path: Path, disks: Path, names: list[str], message: str
) -> None:
    folder = _folder(tmp_path, disks, names)
    with pytest.raises(InputError, match=re.escape(message)):
        find_unlabeled(folder, read_dataset(disks))


def test_find_unlabeled_refuses_missing_folder_and_label_folder(
    tmp_path: Path, disks: Path
) -> None:
    ds = read_dataset(disks)
    with pytest.raises(InputError, match="no such folder"):
        find_unlabeled(tmp_path / "nope", ds)
    folder = _folder(tmp_path, disks, ["x_0000.png"])
    (folder / "labelsTr").mkdir()
    with pytest.raises(InputError, match=r"holds a label folder \(labelsTr/\)"):
        find_unlabeled(folder, ds)
    with pytest.raises(InputError, match="named like a label file"):  # a labelsTr itself
        find_unlabeled(disks / "labelsTr", ds)


def _semi_trainer(plan, cache: Path, out: Path, ids: tuple[str, ...], **cfg) -> Trainer:
    config = TrainConfig(target_epochs=2, val_patches=2, timing_iterations=2, unlabeled=ids, **cfg)
    train = ["case00", "case01", "case02", "case03"]
    return Trainer(plan, cache, out, train, ["case04", "case05"], config)


@pytest.mark.slow
def test_semisup_trainer_resumes_teacher_exactly(disks: Path, tmp_path: Path) -> None:
    """6 iterations in one go, or 3 + stop + resume 3: identical student and teacher."""
    torch.set_num_threads(1)
    ds = read_dataset(disks)
    plan = replace(plan_experiment(compute_fingerprint(ds), PlanBudget(60)), batch_size=2)
    model = tmp_path / "m"
    cache = preprocess_dataset(ds, plan, model / "preprocessed")
    save_plan(plan, model / "plans.json")
    ids = prepare_unlabeled(disks / "imagesTs", disks, model)
    assert ids == tuple(f"{PREFIX}case0{i}" for i in (6, 7, 8))
    assert (cache / f"{PREFIX}case06.npy").is_file() and not list(cache.glob(f"{PREFIX}*_seg*"))
    full = _semi_trainer(plan, cache, tmp_path / "full", ids, iterations=6)
    full.train()
    _semi_trainer(plan, cache, tmp_path / "part", ids, iterations=6, stop_after=3).train()
    saved = torch.load(tmp_path / "part" / "checkpoint_latest.pt", weights_only=False)
    assert saved["iteration"] == 3 and saved["teacher"] is not None
    resumed = _semi_trainer(plan, cache, tmp_path / "part", ids, iterations=6)
    resumed.train(resume=True)
    for a, b in ((full.model, resumed.model), (full.semi.teacher, resumed.semi.teacher)):
        for (k, v), w in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(v, w), k
    teacher_w = next(iter(full.semi.teacher.state_dict().values()))
    assert not torch.equal(teacher_w, next(iter(full.model.state_dict().values())))
    cfg = json.loads((tmp_path / "full" / "train_config.json").read_text())
    assert cfg["unlabeled"] == list(ids) and cfg["unlabeled_weight"] == 1.0


@pytest.mark.slow
def test_auto_run_cli_with_unlabeled(disks: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    argv = ["auto", "run", str(disks), "--out", str(model), "--iterations", "4",
            "--threads", "1", "--unlabeled", str(disks / "imagesTs"),
            "--unlabeled-weight", "0.5"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((model / "report" / "report.json").read_text())
    semi = report["semi_supervised"]
    assert semi["n_unlabeled"] == 3 and semi["unlabeled_weight"] == 0.5
    assert semi["method"] == "mean teacher + bidirectional copy-paste (BCP)"
    text = (model / "report" / "report.md").read_text()
    assert "## Semi-supervised training" in text
    assert "3 unlabelled images were used with the 4 labelled ones" in text
    state = torch.load(model / "fold_0" / "checkpoint_final.pt", weights_only=False)
    assert state["teacher"] is not None and state["config"]["unlabeled_weight"] == 0.5
    argv = ["auto", "train", str(disks), "--out", str(tmp_path / "m1"), "--iterations", "2",
            "--threads", "1", "--unlabeled", str(disks / "imagesTs")]  # fmt: skip
    assert main(argv) == 0
    cfg = json.loads((tmp_path / "m1" / "fold_0" / "train_config.json").read_text())
    assert cfg["unlabeled"] == [f"{PREFIX}case06", f"{PREFIX}case07", f"{PREFIX}case08"]
    bad = tmp_path / "bad"
    shutil.copytree(disks / "imagesTs", bad)
    shutil.copyfile(disks / "labelsTr" / "case00.png", bad / "case06.png")
    argv = ["auto", "train", str(disks), "--out", str(tmp_path / "m2"), "--iterations", "2",
            "--unlabeled", str(bad)]  # fmt: skip
    assert main(argv) == 2  # InputError: a label file in the unlabelled folder
    assert not (tmp_path / "m2").exists()  # no half-built model folder left behind
