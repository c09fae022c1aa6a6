"""``--init OLD_MODEL``: fine-tuning starts exactly from the old weights, with the old plan,
and never changes the old folder; incompatible datasets and folders are refused."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from medseg.automatic.plan import PlanBudget, load_plan
from medseg.errors import InputError
from medseg.training import trainer as trainer_mod
from medseg.training.init_weights import INIT_LR, adopt_plan, prepare_init, resolve_init
from medseg.training.pipeline import plan_dataset, train_fold
from medseg.training.synthetic import write_disk_dataset
from medseg.training.trainer import TrainConfig

pytestmark = pytest.mark.slow  # the module fixture trains a model (~10 s)


def _config(**kw) -> TrainConfig:
    base = {"iterations": 2, "target_epochs": 1, "val_patches": 2, "timing_iterations": 2}
    return TrainConfig(**{**base, **kw})


def _tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (the folder's exact bytes)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def old(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset, trained model folder with fold_0) on 24x24 disks."""
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("init")
    data = write_disk_dataset(base / "ds", 4, (24, 24))
    model = base / "old"
    plan_dataset(data, model, PlanBudget(time_budget_s=60))
    train_fold(data, model, _config())
    return data, model


def _capture_start(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, torch.Tensor]]:
    """Record the model weights when ``Trainer.train`` starts (before the first step)."""
    seen: list[dict[str, torch.Tensor]] = []
    real = trainer_mod.Trainer.train

    def train(self, **kw):
        seen.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        return real(self, **kw)

    monkeypatch.setattr(trainer_mod.Trainer, "train", train)
    return seen


def test_init_starts_from_old_weights_and_keeps_old_folder(
    old, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, model = old
    before = _tree_digest(model)
    new_data = write_disk_dataset(tmp_path / "more", 4, (24, 24), seed=7)  # other cases
    new = tmp_path / "new"
    source = prepare_init(model, new_data, new)
    assert source.checkpoint == model / "fold_0" / "checkpoint_final.pt"
    seen = _capture_start(monkeypatch)
    result = train_fold(new_data, new, _config(initial_lr=INIT_LR), init=source)
    assert result.finished and result.iterations == 2
    old_weights = torch.load(source.checkpoint, weights_only=False)["model"]
    assert seen[0].keys() == old_weights.keys()
    for key, value in old_weights.items():
        assert torch.equal(seen[0][key], value), key
    final = torch.load(new / "fold_0" / "checkpoint_final.pt", weights_only=False)["model"]
    assert any(not torch.equal(final[k], old_weights[k]) for k in old_weights)  # it trained
    assert _tree_digest(model) == before  # the old model is byte-identical
    # the plan is the old one plus a note naming the source
    old_plan, new_plan = load_plan(model / "plans.json"), load_plan(new / "plans.json")
    assert new_plan.notes == (*old_plan.notes, f"initialised from the weights of {model} "
                              "(fold_0/checkpoint_final.pt), with its plan")  # fmt: skip
    assert new_plan.patch_size == old_plan.patch_size and new_plan.filters == old_plan.filters
    assert (new / "dataset.json").read_bytes() == (new_data / "dataset.json").read_bytes()
    info = json.loads((new / "fold_0" / "init.json").read_text())
    assert info["model_dir"] == str(model.resolve()) and info["fold"] == "fold_0"
    assert info["checkpoint"] == "checkpoint_final.pt" and info["initial_lr"] == 1e-2
    assert info["checkpoint_sha256"] == before["fold_0/checkpoint_final.pt"]
    assert json.loads((new / "fold_0" / "train_config.json").read_text())["initial_lr"] == 1e-2


def test_resolve_init_final_else_best_and_fold_choice(old, tmp_path: Path) -> None:
    _, model = old
    copy = tmp_path / "copy"
    shutil.copytree(model, copy)
    assert resolve_init(copy / "fold_0").checkpoint == copy / "fold_0" / "checkpoint_final.pt"
    (copy / "fold_0" / "checkpoint_final.pt").unlink()
    assert resolve_init(copy).checkpoint == copy / "fold_0" / "checkpoint_best.pt"
    shutil.copytree(copy / "fold_0", copy / "fold_1")
    with pytest.raises(InputError, match=r"several trained folds \(fold_0, fold_1\); pass one"):
        resolve_init(copy)
    assert resolve_init(copy / "fold_1").fold_dir == copy / "fold_1"
    for name in ("checkpoint_best.pt",):
        (copy / "fold_0" / name).unlink()
        (copy / "fold_1" / name).unlink()
    with pytest.raises(InputError, match=r"no fold_\*/checkpoint_final\.pt or checkpoint_best"):
        resolve_init(copy)
    with pytest.raises(InputError, match=r"has no plans\.json"):
        resolve_init(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        resolve_init(tmp_path / "missing")


def _edit_labels(data: Path, labels: dict[str, int]) -> None:
    meta = json.loads((data / "dataset.json").read_text())
    meta["labels"] = labels
    (data / "dataset.json").write_text(json.dumps(meta))


def test_incompatible_datasets_are_refused(old, tmp_path: Path) -> None:
    _, model = old
    source = resolve_init(model)
    more = write_disk_dataset(tmp_path / "more", 2, (24, 24))
    _edit_labels(more, {"background": 0, "disk": 1, "ring": 2})
    with pytest.raises(InputError, match=r"labels \{0: 'background', 1: 'disk', 2: 'ring'\} "
                       r"differ from the model's \{0: 'background', 1: 'disk'\}"):  # fmt: skip
        adopt_plan(source, more, tmp_path / "a")
    _edit_labels(more, {"background": 0, "blob": 1})
    with pytest.raises(InputError, match="fine-tuning needs the same label set"):
        adopt_plan(source, more, tmp_path / "a")
    two = write_disk_dataset(tmp_path / "two", 2, (24, 24), channel_names=("MR", "T2"))
    with pytest.raises(InputError, match=r"2 channel\(s\) \['MR', 'T2'\], the model 1 \['MR'\]"):
        adopt_plan(source, two, tmp_path / "a")
    assert not (tmp_path / "a").exists()
    with pytest.raises(InputError, match="--out must be another folder"):
        adopt_plan(source, more, model)


def test_other_plan_in_out_and_bad_weights_are_refused(old, tmp_path: Path) -> None:
    data, model = old
    other = tmp_path / "other"
    plan_dataset(write_disk_dataset(tmp_path / "big", 2, (40, 40)), other,
                 PlanBudget(time_budget_s=60))  # fmt: skip
    if load_plan(other / "plans.json").patch_size != load_plan(model / "plans.json").patch_size:
        with pytest.raises(InputError, match="already holds a model with another plan"):
            adopt_plan(resolve_init(model), data, other)
    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    ckpt = broken / "fold_0" / "checkpoint_final.pt"
    state = torch.load(ckpt, weights_only=False)
    state["model"].pop(next(iter(state["model"])))
    torch.save(state, ckpt)
    new = tmp_path / "new"
    source = prepare_init(broken, data, new)
    with pytest.raises(InputError, match="the weights do not fit the network of the plan"):
        train_fold(data, new, _config(), init=source)
