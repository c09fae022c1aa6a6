"""Semi-supervised training (``--unlabeled``): copy-paste mixing, EMA teacher, ramp, folder
checks, and a small run through the CLI with an exact resume."""

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
from medseg.training.cache import preprocess_dataset
from medseg.training.fingerprint import compute_fingerprint
from medseg.training.planning import plan_experiment
from medseg.training.semisup import (
    PREFIX,
    bidirectional_mix,
    box_mask,
    copy_paste,
    ema_update,
    find_unlabeled,
    prepare_unlabeled,
    sigmoid_rampup,
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
