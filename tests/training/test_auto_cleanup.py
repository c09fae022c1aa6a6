"""A failed ``medseg auto train``/``run`` names the case and removes the model folder it made."""

from __future__ import annotations

from pathlib import Path

import pytest

from medseg.cli.main import main
from medseg.errors import InputError
from medseg.io import load_label, save
from medseg.training.run import RunOptions, remove_if_created, run_auto
from medseg.training.synthetic import write_disk_dataset


def _dataset_with_unknown_label(root: Path) -> Path:
    """3 disk cases; case01's disk is labelled 2, which dataset.json does not declare."""
    root = write_disk_dataset(root, 3, (16, 16))
    path = root / "labelsTr" / "case01.png"
    label = load_label(path).array.copy()
    label[label == 1] = 2
    save(label, path)
    return root


def _train(root: Path, out: Path) -> int:
    return main(["auto", "train", str(root), "--out", str(out), "--iterations", "2",
                 "--threads", "1"])  # fmt: skip


def test_auto_train_names_the_case_and_removes_its_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = _dataset_with_unknown_label(tmp_path / "ds")
    out = tmp_path / "new" / "model"
    assert _train(root, out) == 2
    err = capsys.readouterr().err
    assert "case 'case01': label values [2] are not in the plan's labels [0, 1]" in err
    assert not (tmp_path / "new").exists()  # the parent it made is gone too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_auto_train_keeps_a_folder_that_existed(tmp_path: Path) -> None:
    root = _dataset_with_unknown_label(tmp_path / "ds")
    out = tmp_path / "model"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert _train(root, out) == 2
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "plans.json").is_file()  # what the run wrote stays in a folder it did not make


def test_auto_run_check_names_the_case_before_making_a_folder(tmp_path: Path) -> None:
    root = _dataset_with_unknown_label(tmp_path / "ds")
    opts = RunOptions(time_budget_s=None, iterations=2)
    with pytest.raises(InputError, match=r"case01: label values \[2\] are not in dataset.json"):
        run_auto(root, tmp_path / "model", opts)
    assert not (tmp_path / "model").exists()


def test_remove_if_created(tmp_path: Path) -> None:
    fresh = tmp_path / "a" / "b"
    with pytest.raises(ValueError, match="boom"), remove_if_created(fresh):
        fresh.mkdir(parents=True)
        (fresh / "x").write_text("1")
        raise ValueError("boom")
    assert not (tmp_path / "a").exists()
    with remove_if_created(fresh):  # success: kept
        fresh.mkdir(parents=True)
    assert fresh.is_dir()
    with pytest.raises(ValueError, match="boom"), remove_if_created(fresh):
        (fresh / "y").write_text("2")
        raise ValueError("boom")
    assert (fresh / "y").is_file()  # existed before the block: never removed
    never = tmp_path / "never"
    with pytest.raises(ValueError, match="boom"), remove_if_created(never):
        raise ValueError("boom")  # nothing was made: nothing to remove
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
