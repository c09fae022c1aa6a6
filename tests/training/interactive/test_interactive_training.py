"""medseg-interactive training: split, targets, simulated interactions, resume, CLI."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import InputError
from medseg.training.interactive import InteractiveTrainConfig, is_held_out, train
from medseg.training.interactive.data import load_sources, sample_target, slice_presence
from medseg.training.interactive.samples import SampleMaker
from medseg.training.interactive.simulate import (
    InteractionState,
    correct,
    encode_state,
    first_prompt,
)


def _write_dataset(root: Path) -> Path:
    """2D dataset ``toy2d`` (3 PNG cases: two squares, labels 1 and 2) and 3D ``toy3d``."""
    import nibabel as nib
    from PIL import Image as PILImage

    d2 = root / "toy2d"
    (d2 / "images").mkdir(parents=True)
    (d2 / "labels").mkdir()
    for i in range(3):
        img = np.full((64, 64), 30, np.uint8)
        lab = np.zeros((64, 64), np.uint8)
        img[8:24, 8 + i : 24 + i] = 200
        lab[8:24, 8 + i : 24 + i] = 1
        img[40:56, 36:60] = 120
        lab[40:56, 36:60] = 2
        PILImage.fromarray(img).save(d2 / "images" / f"c{i}.png")
        PILImage.fromarray(lab).save(d2 / "labels" / f"c{i}.png")
    d3 = root / "toy3d"
    (d3 / "images").mkdir(parents=True)
    (d3 / "labels").mkdir()
    vol = np.zeros((20, 24, 28), np.float32)  # nibabel (x, y, z) order
    lab3 = np.zeros((20, 24, 28), np.uint8)
    vol[5:15, 6:18, 4:20] = 100.0
    lab3[5:15, 6:18, 4:20] = 3
    nib.save(nib.Nifti1Image(vol, np.eye(4)), d3 / "images" / "v_0000.nii.gz")
    nib.save(nib.Nifti1Image(lab3, np.eye(4)), d3 / "labels" / "v.nii.gz")
    return root


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return _write_dataset(tmp_path_factory.mktemp("toy"))


def _config(tmp_path: Path, toy: Path, **kw) -> InteractiveTrainConfig:
    base = dict(data=(str(toy),), out=str(tmp_path / "w.pt"), batch_size=2, size=32,
                channels=(4, 8), max_corrections=2, seed=3, time_budget_s=600.0)  # fmt: skip
    base.update(kw)
    return InteractiveTrainConfig(**base)


def test_held_out_split():
    assert is_held_out("isbi2012_em", "train_24") and not is_held_out("isbi2012_em", "train_23")
    assert is_held_out("stardist_nuclei", "anything")
    assert not is_held_out("unknown_dataset", "c0")


def test_load_sources_and_holdout_filter(toy):
    sources = load_sources([toy])
    names = sorted(s.name for s in sources)
    assert names == ["toy2d/c0", "toy2d/c1", "toy2d/c2", "toy3d/v"]
    two_d = next(s for s in sources if s.name == "toy2d/c0")
    assert two_d.image.shape == (64, 64, 3) and two_d.values == (1, 2) and not two_d.instance
    kept = load_sources([toy], lambda d, c: c != "c1")
    assert "toy2d/c1" not in {s.name for s in kept}
    with pytest.raises(InputError):
        load_sources([toy / "toy2d" / "images"])


def test_slice_presence_and_3d_targets(toy):
    labels = np.zeros((4, 5, 6), np.int32)
    labels[1:3, 2, 3:5] = 7
    pres = slice_presence(labels)
    assert pres[0][7].tolist() == [1, 2] and pres[1][7].tolist() == [2]
    assert pres[2][7].tolist() == [3, 4]
    vol = next(s for s in load_sources([toy]) if s.ndim == 3)
    rng = np.random.default_rng(0)
    for _ in range(6):
        image, mask = sample_target(vol, rng)
        assert image.ndim == 3 and image.shape[-1] == 3 and image.shape[:2] == mask.shape
        assert mask.any() and image[mask].min() > image[~mask].max()  # the bright box


def test_sample_maker_gives_network_frame_samples(toy):
    maker = SampleMaker(load_sources([toy]), size=32, p_synthetic=0.5)
    rng = np.random.default_rng(1)
    for _ in range(5):
        s = maker(rng)
        assert s.image.shape == (3, 32, 32) and s.gt.shape == (32, 32) and s.gt.sum() >= 3
        assert s.image.min() >= 0.0 and s.image.max() <= 1.0


def test_corrections_follow_the_error_regions():
    gt = np.zeros((32, 32), bool)
    gt[8:24, 8:24] = True
    rng = np.random.default_rng(0)
    state = InteractionState(32)
    pred = np.zeros_like(gt)
    assert correct(state, pred, gt, rng, p_scribble=0.0)
    (x, y), = state.pos_points  # fmt: skip
    assert gt[y, x] and not state.neg_points
    fp = gt.copy()
    fp[0:6, 26:32] = True  # a false positive, the only error
    assert correct(state, fp, gt, rng, p_scribble=0.0)
    (x, y), = state.neg_points  # fmt: skip
    assert fp[y, x] and not gt[y, x]
    assert not correct(state, gt, gt, rng)  # nothing left to correct


def test_first_prompt_and_encoding():
    gt = np.zeros((32, 32), bool)
    gt[10:20, 12:22] = True
    rng = np.random.default_rng(5)
    kinds = set()
    for _ in range(20):
        state = InteractionState(32)
        first_prompt(state, gt, rng)
        x = encode_state(state, np.zeros((3, 32, 32), np.float32), np.ones((32, 32)))
        assert x.shape == (9, 32, 32)
        box = np.zeros((32, 32), bool)
        if state.box is not None:  # (x0, y0, x1, y1) inclusive, jittered by <= 15 %
            kinds.add("box")
            x0, y0, x1, y1 = state.box
            assert max(abs(x0 - 12), abs(y0 - 10), abs(x1 - 21), abs(y1 - 19)) <= 2
            box[y0 : y1 + 1, x0 : x1 + 1] = True
        np.testing.assert_array_equal(x[3] > 0, box)  # the box channel is exactly the box
        for px, py in state.pos_points:  # clicks: on the target, a disk of 1 at the click
            kinds.add("click")
            assert gt[int(py), int(px)] and x[4][int(py), int(px)] == 1.0
        assert (x[4] > 0).any() == bool(state.pos_points)
        scribble = state.pos_scribble
        if scribble is not None:  # scribbles: inside the target, encoded where drawn
            kinds.add("scribble")
            assert scribble.any() and gt[scribble > 0].all() and (x[6][scribble > 0] > 0).all()
        else:
            assert not x[6].any()
        assert not x[5].any() and not x[7].any()  # nothing negative at first
    assert kinds == {"box", "click", "scribble"}


def test_training_resume_continues_exactly(tmp_path, toy):
    import torch

    sources = load_sources([toy])
    straight = train(_config(tmp_path / "a", toy, max_iterations=4), sources, progress=False)
    assert straight.iteration == 4
    cfg = _config(tmp_path / "b", toy, max_iterations=2)
    assert train(cfg, sources, progress=False).iteration == 2
    resumed_cfg = dataclasses.replace(cfg, max_iterations=4)
    resumed = train(resumed_cfg, sources, resume=True, progress=False)
    assert resumed.iteration == 4
    ckpt = torch.load(cfg.checkpoint_path, weights_only=False)
    steps = {int(s["step"]) for s in ckpt["optimizer"]["state"].values()}
    assert steps == {4}  # AdamW state continued: 2 + 2 steps
    a = torch.load(tmp_path / "a" / "w.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "w.pt", weights_only=True)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k])  # same as never stopping


def test_training_lowers_the_loss(tmp_path, toy):
    """Seeded: the first 20 iterations of both runs are the same; the loss (moving average)
    after 300 is about half of that after 20 (1.31 -> 0.70 measured)."""
    sources = load_sources([toy])
    early = train(_config(tmp_path / "a", toy, max_iterations=20, lr=1e-2), sources,
                  progress=False)  # fmt: skip
    late = train(_config(tmp_path / "b", toy, max_iterations=300, lr=1e-2), sources,
                 progress=False)  # fmt: skip
    assert early.iteration == 20 and late.iteration == 300
    assert late.loss_ema < 0.75 * early.loss_ema, (early.loss_ema, late.loss_ema)
    assert late.dice_ema > early.dice_ema


def test_init_from_weights_continues_the_count(tmp_path, toy):
    import torch

    sources = load_sources([toy])
    first = _config(tmp_path / "a", toy, max_iterations=2)
    train(first, sources, progress=False)
    start = torch.load(first.out, weights_only=True)["state_dict"]
    cfg = _config(tmp_path / "b", toy, max_iterations=3, init=first.out, lr=0.0)
    state = train(cfg, sources, progress=False)
    assert state.iteration == 3  # 2 from the weights file + 1 here
    after = torch.load(cfg.out, weights_only=True)["state_dict"]
    for k in start:  # lr 0: the loaded weights pass through unchanged
        torch.testing.assert_close(after[k], start[k])
    with pytest.raises(InputError, match="not both"):
        train(cfg, sources, resume=True, progress=False)
    with pytest.raises(InputError, match="no weights file"):
        train(dataclasses.replace(cfg, init=str(tmp_path / "missing.pt")), sources)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="cannot read"):
        train(dataclasses.replace(cfg, init=str(tmp_path / "junk.pt")), sources)
    other = dataclasses.replace(cfg, channels=(4, 8, 16), size=32)
    with pytest.raises(InputError, match="differs"):
        train(other, sources, progress=False)


def test_lr_factor_cosine_by_time_and_iterations(tmp_path, toy):
    from medseg.training.interactive.trainer import lr_factor

    const = _config(tmp_path, toy, time_budget_s=100.0)
    assert lr_factor(const, 50.0, 10, 0) == 1.0
    cos = dataclasses.replace(const, lr_schedule="cosine", lr_min_fraction=0.0)
    assert lr_factor(cos, 0.0, 0, 0) == pytest.approx(1.0)
    assert lr_factor(cos, 50.0, 0, 0) == pytest.approx(0.5)
    assert lr_factor(cos, 100.0, 0, 0) == pytest.approx(0.0)
    assert lr_factor(cos, 500.0, 0, 0) == pytest.approx(0.0)  # past the budget: the floor
    # iterations of this invocation (started at 10, stops at 30): 20 of 20 done -> the end
    by_iter = dataclasses.replace(cos, max_iterations=30, lr_min_fraction=0.01)
    assert lr_factor(by_iter, 1.0, 20, 10) == pytest.approx(0.01 + 0.99 * 0.5, abs=1e-3)
    assert lr_factor(by_iter, 1.0, 30, 10) == pytest.approx(0.01)
    with pytest.raises(InputError, match="lr schedule"):
        dataclasses.replace(cos, lr_schedule="step")


def test_resume_without_checkpoint_and_bad_config(tmp_path, toy):
    with pytest.raises(InputError, match="no checkpoint"):
        train(_config(tmp_path, toy, max_iterations=1), [], resume=True, progress=False)
    with pytest.raises(InputError):
        _config(tmp_path, toy, size=31)
    with pytest.raises(InputError):
        _config(tmp_path, toy, data=())
    with pytest.raises(InputError, match="max_corrections"):
        _config(tmp_path, toy, max_corrections=-1)


def test_cli_train_interactive(tmp_path, toy):
    import torch

    from medseg.cli.main import main

    with pytest.raises(SystemExit):  # argparse usage error, one line
        main(["train", "interactive", "--data", str(toy), "--time-budget", "soon"])
    out = tmp_path / "cli.pt"
    rc = main(["train", "interactive", "--data", str(toy), "--out", str(out),
               "--max-iterations", "1", "--batch-size", "1", "--max-corrections", "2",
               "--no-progress"])  # fmt: skip
    assert rc == 0
    payload = torch.load(out, weights_only=True)
    assert payload["iterations"] == 1 and payload["format"] == "medseg-interactive/1"
    assert '"max_corrections": 2' in payload["train_config"]
    assert (tmp_path / "cli.pt.ckpt").is_file()


def test_write_heldout_view(tmp_path):
    import json

    from medseg.training.interactive.split import write_heldout_view

    root = tmp_path / "shared"
    for case in ("cxr_3", "cxr_4"):
        for sub in ("images", "labels"):
            (root / "cxr_lung_demo" / sub).mkdir(parents=True, exist_ok=True)
            (root / "cxr_lung_demo" / sub / f"{case}.png").write_bytes(b"x")
    cases = [{"id": c, "images": [f"cxr_lung_demo/images/{c}.png"],
              "label": f"cxr_lung_demo/labels/{c}.png"} for c in ("cxr_3", "cxr_4")]  # fmt: skip
    manifest = {"datasets": [{"name": "cxr_lung_demo", "task": "semantic", "dims": 2,
                              "cases": cases}]}  # fmt: skip
    (root / "manifest.json").write_text(json.dumps(manifest))
    written = write_heldout_view(root, tmp_path / "view")
    assert written == [tmp_path / "view" / "cxr_lung_demo"]
    assert sorted(p.name for p in (written[0] / "images").iterdir()) == ["cxr_4.png"]
    assert (written[0] / "labels" / "cxr_4.png").resolve() == (
        root / "cxr_lung_demo" / "labels" / "cxr_4.png"
    ).resolve()
    view = json.loads((tmp_path / "view" / "manifest.json").read_text())
    assert view["datasets"][0]["task"] == "semantic"
