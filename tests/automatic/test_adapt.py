"""Test-time adaptation (medseg.automatic.adapt, ``medseg auto predict --adapt``): bounded,
non-destructive, it lowers the prediction entropy on a tiny synthetic model, and its
class-balance term (exact value, prior from ``fingerprint.json``, fallback without one)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.automatic.adapt import (
    AdaptConfig,
    AdaptedModel,
    adapt_network,
    class_balance,
    load_class_prior,
    norm_affine_parameters,
    prediction_entropy,
    sample_patches,
)
from medseg.automatic.model import AutoModel
from medseg.cli.main import main
from medseg.errors import InputError
from medseg.io import load_label, save
from medseg.io.image import Image


def _tiny_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.InstanceNorm2d(4, affine=True),
        torch.nn.LeakyReLU(0.01),
        torch.nn.Conv2d(4, 2, 1),
    ).eval()


def _image_data(seed: int = 0) -> np.ndarray:
    """``(1, 24, 24)`` float32: a bright square on noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (1, 24, 24)).astype(np.float32)
    x[0, 6:14, 6:14] += 3
    return x


def _state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_entropy_decreases_only_norm_parameters_change() -> None:
    net = _tiny_net()
    before = _state(net)
    adapted, report = adapt_network(net, _image_data(), (16, 16), AdaptConfig(steps=30, lr=0.05))
    assert report.steps == 30
    assert report.entropy_after < report.entropy_before
    assert report.parameters == 8 and report.tensors == 2
    for k, v in net.state_dict().items():  # the source network is untouched
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    after = adapted.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed == {"1.weight", "1.bias"}
    assert not any(p.requires_grad for p in adapted.parameters())


def test_steps_and_time_are_bounded() -> None:
    _, report = adapt_network(_tiny_net(), _image_data(), (16, 16), AdaptConfig(steps=3))
    assert report.steps == 3
    _, report = adapt_network(
        _tiny_net(), _image_data(), (16, 16), AdaptConfig(steps=1000), deadline=0.0
    )
    assert report.steps == 0 and report.entropy_after == report.entropy_before


def test_prediction_entropy_exact() -> None:
    logits = torch.zeros((1, 2, 2, 2))  # uniform over 2 classes: log 2 per voxel
    assert float(prediction_entropy(logits)) == pytest.approx(np.log(2))
    logits[:, 0] = 100.0  # certain: 0
    assert float(prediction_entropy(logits)) == pytest.approx(0.0, abs=1e-6)


def test_sample_patches_shapes_padding_and_slices() -> None:
    rng = np.random.default_rng(0)
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    p = sample_patches(data, (5, 4), 2, rng)  # first axis shorter than the patch: padded
    assert p.shape == (2, 2, 5, 4)
    np.testing.assert_array_equal(p[0, :, :3], data)
    assert not p[:, :, 3:].any()
    vol = np.stack([np.full((6, 6), z, np.float32) for z in range(4)])[None]  # (1, 4, 6, 6)
    s = sample_patches(vol, (6, 6), 3, rng)  # 2D patch on 3D data: whole slices
    assert s.shape == (3, 1, 6, 6) and all(len(np.unique(x)) == 1 for x in s)
    with pytest.raises(InputError, match="does not fit"):
        sample_patches(data[0], (2, 2, 2, 2), 1, rng)


def test_config_bounds() -> None:
    with pytest.raises(InputError, match="steps must be >= 1"):
        AdaptConfig(steps=0)
    with pytest.raises(InputError, match="time must be > 0"):
        AdaptConfig(max_seconds=0)
    with pytest.raises(InputError, match="no normalisation layer"):
        adapt_network(torch.nn.Conv2d(1, 2, 1), _image_data(), (8, 8), AdaptConfig())


def _write_model(model_dir: Path, class_frequencies: dict[str, float] | None = None) -> Path:
    """A random-weight 2D plan (24x24 patches, widths 4-8-8, 2 classes) as a model folder."""
    from medseg.automatic.network import build_network
    from medseg.automatic.plan import Normalization, Plan, save_plan

    plan = Plan(
        configuration="2d", data_dims=2, transpose=(0, 1), target_spacing=(1.0, 1.0),
        patch_size=(24, 24), batch_size=2, kernel_sizes=((3, 3),) * 3,
        strides=((1, 1), (2, 2), (2, 2)), filters=(4, 8, 8), deep_supervision_heads=0,
        channel_names=("MR",), normalization=(Normalization("zscore"),), use_nonzero_mask=False,
        label_values=(0, 1), label_names={0: "background", 1: "square"},
        median_shape=(24, 24), anisotropic=False, estimated_iteration_s=1.0,
        estimated_iterations=1, estimated_memory_mb=0.0,
    )  # fmt: skip
    save_plan(plan, model_dir / "plans.json")
    torch.manual_seed(0)
    net = build_network(plan, deep_supervision=False)
    (model_dir / "fold_0").mkdir(parents=True)
    state = {"model": net.state_dict(), "plan": plan.to_dict(),
             "config": {"deep_supervision": False}, "iteration": 0}  # fmt: skip
    torch.save(state, model_dir / "fold_0" / "checkpoint_final.pt")
    if class_frequencies is not None:  # the part of fingerprint.json the balance term reads
        fingerprint = {"label_values": [0, 1], "class_frequencies": class_frequencies}
        (model_dir / "fingerprint.json").write_text(json.dumps(fingerprint))
    return model_dir


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_adapted_model_leaves_model_and_disk_unchanged(tmp_path: Path) -> None:
    model_dir = _write_model(tmp_path / "model")
    ckpt = model_dir / "fold_0" / "checkpoint_final.pt"
    digest = _sha(ckpt)
    model = AutoModel(model_dir)
    before = _state(model.networks[0])
    image = Image((_image_data()[0] * 40 + 100).clip(0, 255).astype(np.uint8))
    adapted = AdaptedModel(model, AdaptConfig(steps=4, lr=0.05))
    out = adapted.predict(image)
    assert out.shape == (24, 24) and set(np.unique(out.array)) <= {0, 1}
    (report,) = adapted.reports[0]
    assert report.steps == 4 and report.entropy_after < report.entropy_before
    assert "reset between images" in adapted.summary() and "4 step(s)" in adapted.summary()
    for k, v in model.networks[0].state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert _sha(ckpt) == digest
    fresh = AutoModel(model_dir).predict(image).array
    np.testing.assert_array_equal(model.predict(image).array, fresh)


def test_cli_auto_predict_adapt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model_dir = _write_model(tmp_path / "model")
    digest = _sha(model_dir / "fold_0" / "checkpoint_final.pt")
    image = (_image_data()[0] * 40 + 100).clip(0, 255).astype(np.uint8)
    save(Image(image), tmp_path / "in" / "a_0000.png")
    save(Image(image[::-1].copy()), tmp_path / "in" / "b_0000.png")
    argv = ["auto", "predict", str(model_dir), str(tmp_path / "in"), str(tmp_path / "out"),
            "--adapt", "--adapt-steps", "2", "--threads", "1"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "--adapt (TENT)" in text and "4 step(s) over 2 image(s)" in text
    assert load_label(tmp_path / "out" / "a.png").shape == (24, 24)
    assert _sha(model_dir / "fold_0" / "checkpoint_final.pt") == digest
    assert main([*argv[:-4], "--adapt-steps", "0"]) == 2  # refused with one error line
    assert main([*argv, "--adapt-balance", "0"]) == 0
    assert "objective prediction entropy only (weight 0)" in capsys.readouterr().out


def test_norm_affine_parameters_of_the_dynunet(tmp_path: Path) -> None:
    model = AutoModel(_write_model(tmp_path / "model"))
    params = norm_affine_parameters(model.networks[0])
    norms = [m for m in model.networks[0].modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert len(params) == 2 * len(norms) > 0


def test_class_balance_exact() -> None:
    probs = torch.tensor([0.1, 0.3, 0.5, 0.9]).reshape(1, 1, 2, 2)  # foreground per voxel
    logits = torch.log(torch.cat([1 - probs, probs], dim=1))  # (1, 2, 2, 2)
    prior = torch.tensor([0.9, 0.1])
    q = np.array([0.55, 0.45])  # mean prediction over the voxels
    expected = float(np.sum(q * np.log(q / np.array([0.9, 0.1]))))
    assert float(class_balance(logits, prior)) == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.55 * np.log(0.55 / 0.9) + 0.45 * np.log(4.5))
    assert float(class_balance(logits, torch.tensor([0.55, 0.45]))) == pytest.approx(0, abs=1e-7)
    two = torch.cat([logits, logits.flip(dims=(1,))], dim=0)  # batch mean: q = (0.5, 0.5)
    assert float(class_balance(two, prior)) == pytest.approx(0.5 * np.log(0.5 / 0.9 / 0.1 * 0.5))


def test_load_class_prior_clips_and_falls_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "fingerprint.json").write_text(
        json.dumps({"class_frequencies": {"0": 1.0, "1": 0.0}})
    )
    np.testing.assert_allclose(load_class_prior(tmp_path, (0, 1)), np.array([1, 1e-4]) / 1.0001)
    with caplog.at_level(logging.WARNING, logger="medseg.automatic.adapt"):
        assert load_class_prior(tmp_path, (0, 2)) is None  # label 2 not recorded
        assert load_class_prior(tmp_path / "old", (0, 1)) is None  # no fingerprint.json
    assert len(caplog.records) == 2
    assert all("entropy alone" in r.getMessage() for r in caplog.records)


def test_balance_term_lowers_the_class_kl() -> None:
    prior = np.array([0.5, 0.5])
    cfg = AdaptConfig(
        steps=30, lr=0.05, balance=10.0, consistency=0.0, reject_worse=False, min_agreement=0.0
    )
    _, plain = adapt_network(_tiny_net(), _image_data(), (16, 16), cfg)
    _, report = adapt_network(_tiny_net(), _image_data(), (16, 16), cfg, prior=prior)
    assert np.isnan(plain.balance_before) and plain.objective_after == plain.entropy_after
    assert report.balance_after < report.balance_before / 10
    assert report.objective_after == pytest.approx(
        report.entropy_after + 10 * report.balance_after, rel=1e-6
    )
    assert report.objective_after < report.objective_before and report.kept


def test_reject_worse_keeps_the_trained_network() -> None:
    net = _tiny_net()
    before = _state(net)
    cfg = AdaptConfig(steps=1, lr=5.0, balance=100.0, reject_worse=True)  # overshoots
    out, report = adapt_network(net, _image_data(), (16, 16), cfg, prior=np.array([0.5, 0.5]))
    assert report.steps == 1 and report.objective_after > report.objective_before
    assert not report.kept and out is net and "rejected" in report.line()
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    with pytest.raises(InputError, match="class-balance weight must be >= 0"):
        AdaptConfig(balance=-1.0)


def test_adapted_model_with_prior_bounded_and_disk_unchanged(tmp_path: Path) -> None:
    model_dir = _write_model(tmp_path / "model", {"0": 0.9, "1": 0.1})
    ckpt = model_dir / "fold_0" / "checkpoint_final.pt"
    digest = _sha(ckpt)
    model = AutoModel(model_dir)
    before = _state(model.networks[0])
    image = Image((_image_data()[0] * 40 + 100).clip(0, 255).astype(np.uint8))
    adapted = AdaptedModel(model, AdaptConfig(steps=3, lr=0.05, balance=2.0))
    np.testing.assert_allclose(adapted.prior, [0.9, 0.1])
    adapted.predict(image)
    adapted.predict(image)
    assert [r.steps for image_reports in adapted.reports for r in image_reports] == [3, 3]
    (first,), (second,) = adapted.reports  # episodic: the same start and patches per image
    assert first.balance_before == second.balance_before and np.isfinite(first.balance_after)
    text = adapted.summary()
    assert "objective prediction entropy + 2 x KL(mean prediction || training class " in text
    assert "frequencies: background 0.900, square 0.100)" in text and "6 step(s)" in text
    for k, v in model.networks[0].state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert _sha(ckpt) == digest
    off = AdaptedModel(model, AdaptConfig(steps=1, balance=0.0))
    assert off.prior is None and off.objective() == "prediction entropy only (weight 0)"
    old = AdaptedModel(AutoModel(_write_model(tmp_path / "old")), AdaptConfig(steps=1))
    assert old.prior is None
    assert old.objective() == "prediction entropy only (no class frequencies recorded)"
    old.predict(image)
    assert np.isnan(old.reports[0][0].balance_after) and "class KL" not in old.summary()


def test_cli_adapt_options_map_to_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from medseg.cli.auto_adapt_options import adapt_config

    ns = argparse.Namespace(
        adapt_steps=None, adapt_time=30.0, adapt_lr=None, adapt_balance=None,
        adapt_consistency=None, adapt_agreement=None,
    )  # fmt: skip
    assert adapt_config(ns) == AdaptConfig(max_seconds=30.0)  # the library defaults
    ns = argparse.Namespace(
        adapt_steps=3, adapt_time=30.0, adapt_lr=0.5, adapt_balance=0.0,
        adapt_consistency=0.0, adapt_agreement=0.0,
    )  # fmt: skip
    old = AdaptConfig(steps=3, max_seconds=30.0, lr=0.5, balance=0.0, consistency=0.0,
                      min_agreement=0.0, reject_worse=False)  # fmt: skip
    assert adapt_config(ns) == old
    model_dir = _write_model(tmp_path / "model")
    digest = _sha(model_dir / "fold_0" / "checkpoint_final.pt")
    image = (_image_data()[0] * 40 + 100).clip(0, 255).astype(np.uint8)
    save(Image(image), tmp_path / "in" / "a_0000.png")
    save(Image(image[::-1].copy()), tmp_path / "in" / "b_0000.png")
    argv = ["auto", "predict", str(model_dir), str(tmp_path / "in"), str(tmp_path / "out"),
            "--adapt", "--adapt-steps", "2", "--adapt-agreement", "1", "--adapt-consistency", "1",
            "--threads", "1"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "of 2 adaptation(s) rejected (objective not lower or label agreement with the " in text
    assert "trained model < 1), mirror-consistency weight 1" in text and "4 step(s)" in text
    assert _sha(model_dir / "fold_0" / "checkpoint_final.pt") == digest
    assert main([*argv, "--adapt-agreement", "2"]) == 2  # refused: agreement must be in [0, 1]
