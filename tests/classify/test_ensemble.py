"""``medseg.classify.ensemble``: probability averaging, save/load round trip, training.

Members are small untrained 3D CNNs (``cnn3d``) on ``(N, 1, 8, 8, 8)`` volumes, so nothing
needs ``../shared`` or downloaded weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import medseg.classify as mc
from medseg.classify.ensemble import EnsembleClassifier, is_ensemble_folder, mean_proba
from medseg.classify.model import Classifier, ClassifierConfig, build_classifier_net
from medseg.errors import InputError, ModelError


def _member(seed: int, classes: tuple[str, ...] = ("a", "b", "c")) -> Classifier:
    import torch

    torch.manual_seed(seed)
    cfg = ClassifierConfig("cnn3d", "ordinal", classes, 3, 1, 8, 8)
    return Classifier(cfg, build_classifier_net(cfg, pretrained=False))


def _volumes(n: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, 8, 8, 8)).astype(np.float32)


def test_mean_proba_weighted_exact() -> None:
    a = np.array([[0.5, 0.5], [1.0, 0.0]])
    b = np.array([[0.25, 0.75], [0.0, 1.0]])
    np.testing.assert_array_equal(mean_proba([a, b]), [[0.375, 0.625], [0.5, 0.5]])
    np.testing.assert_array_equal(mean_proba([a, b], [1, 3]), [[0.3125, 0.6875], [0.25, 0.75]])
    with pytest.raises(InputError, match="non-negative weights"):
        mean_proba([a, b], [1, -1])
    with pytest.raises(InputError, match="at least one member"):
        mean_proba([])


def test_ensemble_averages_member_probabilities_exactly() -> None:
    m1, m2 = _member(0), _member(1)
    x = _volumes()
    p1, p2 = m1.predict_proba(x), m2.predict_proba(x)
    assert not np.array_equal(p1, p2)
    ens = EnsembleClassifier([m1, m2])
    np.testing.assert_array_equal(ens.predict_proba(x), (p1 + p2) / 2)
    np.testing.assert_array_equal(ens.predict(x), ((p1 + p2) / 2).argmax(1))
    assert (ens.config.model, ens.classes, ens.names) == (
        "ensemble",
        ["a", "b", "c"],
        ["cnn3d"] * 2,
    )


def test_members_must_agree() -> None:
    with pytest.raises(ModelError, match="ensemble members disagree"):
        EnsembleClassifier([_member(0), _member(1, ("a", "b"))])
    with pytest.raises(InputError, match="one name and one weight"):
        EnsembleClassifier([_member(0)], names=["x", "y"])


def test_save_load_round_trip(tmp_path: Path) -> None:
    ens = EnsembleClassifier([_member(0), _member(1)], ["first", "second"], [1.0, 3.0])
    ens.save(tmp_path / "ens")
    data = json.loads((tmp_path / "ens" / "classifier.json").read_text())
    assert data["model"] == "ensemble"
    assert data["members"] == ["members/0-first", "members/1-second"]
    assert data["weights"] == [1.0, 3.0]
    assert is_ensemble_folder(tmp_path / "ens") and not is_ensemble_folder(tmp_path)
    back = mc.load(tmp_path / "ens")
    assert isinstance(back, EnsembleClassifier)
    assert (back.names, back.weights, back.config) == (ens.names, ens.weights, ens.config)
    x = _volumes(seed=3)
    np.testing.assert_array_equal(back.predict_proba(x), ens.predict_proba(x))


def test_load_rejects_member_outside_folder(tmp_path: Path) -> None:
    ens = EnsembleClassifier([_member(0), _member(1)])
    ens.save(tmp_path / "ens")
    cfg = tmp_path / "ens" / "classifier.json"
    data = json.loads(cfg.read_text())
    data["members"][0] = "../elsewhere"
    cfg.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="not inside the ensemble"):
        mc.load(tmp_path / "ens")


def _dataset() -> mc.Dataset:
    images = {s: _volumes(6, seed=i) for i, s in enumerate(("train", "val", "test"))}
    labels = {s: np.array([0, 1, 0, 1, 0, 1]) for s in images}
    return mc.Dataset(images, labels, "binary", ["no", "yes"], "synthetic")


def test_unknown_or_single_member() -> None:
    for members, msg in (
        ((("cnn3d", "vgg"),), "unknown ensemble member 'vgg'"),
        (
            (("cnn3d",),),
            "at least two members",
        ),
    ):
        opts = mc.TrainOptions(model="ensemble", ensemble=members[0], progress=False)
        with pytest.raises(InputError, match=msg):
            mc.train(_dataset(), None, opts)


def test_baseline_member_uses_the_medmnist_recipe() -> None:
    from medseg.classify.ensemble import member_options

    opts = mc.TrainOptions(model="ensemble", ensemble=("cnn3d", "baseline"), time_budget_s=600,
                           max_epochs=7, seed=3, progress=False)  # fmt: skip
    base = member_options("baseline", opts, 300.0)
    assert (base.model, base.batch_size, base.schedule, base.augment.enabled) == (
        "resnet18",
        128,
        "step",
        False,
    )
    assert (base.time_budget_s, base.max_epochs, base.seed) == (300.0, 7, 3)
    cnn = member_options("cnn3d", opts, 300.0)
    assert (cnn.model, cnn.ensemble, cnn.time_budget_s, cnn.batch_size) == ("cnn3d", (), 300.0, 32)


@pytest.mark.slow
def test_train_ensemble_writes_a_loadable_folder(tmp_path: Path) -> None:
    opts = mc.TrainOptions(
        model="ensemble", ensemble=("cnn3d", "cnn3d"), max_epochs=1, batch_size=4,
        progress=False, time_budget_s=600,
    )  # fmt: skip
    result = mc.train(_dataset(), tmp_path / "m", opts)
    assert [r["member"] for r in result.history] == ["cnn3d", "cnn3d", "ensemble"]
    report = json.loads((tmp_path / "m" / "report.json").read_text())
    assert (report["model"], report["split"]) == ("ensemble", "test")
    for sub in ("members/0-cnn3d", "members/1-cnn3d"):
        assert (tmp_path / "m" / sub / "weights.pt").is_file()
        assert (tmp_path / "m" / sub / "history.json").is_file()
    back = mc.load(tmp_path / "m")
    x = _dataset().images["test"]
    np.testing.assert_array_equal(back.predict_proba(x), result.classifier.predict_proba(x))
    assert back.predict_proba(x).shape == (6, 2)


def test_each_member_gets_an_equal_share_of_the_budget_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib

    ens_mod = importlib.import_module("medseg.classify.ensemble")
    train_mod = importlib.import_module("medseg.classify.train")  # not the train function

    clock = {"t": 0.0}
    budgets: list[tuple[str, float]] = []

    def fake_train(
        ds: mc.Dataset, out: object, opts: mc.TrainOptions, evaluate_test: bool = True
    ) -> object:
        budgets.append((opts.model, opts.time_budget_s))
        clock["t"] += 100.0  # every member takes 100 s
        member = _member(len(budgets), ("no", "yes"))
        return train_mod.TrainResult(member, [], 0, {"auc": 0.5, "acc": 0.5}, None, 100.0)

    monkeypatch.setattr(train_mod, "train", fake_train)
    monkeypatch.setattr(ens_mod.time, "monotonic", lambda: clock["t"])
    opts = mc.TrainOptions(model="ensemble", ensemble=("cnn3d", "baseline", "cnn3d"),
                           time_budget_s=600.0, progress=False)  # fmt: skip
    ds = _dataset()
    ds.task = "ordinal"  # _member builds ordinal classifiers
    ds.labels = {s: np.array([0, 1, 0, 1, 0, 1]) for s in ds.labels}
    result = ens_mod.train_ensemble(ds, None, opts, evaluate_test=False)
    assert budgets == [("cnn3d", 200.0), ("resnet18", 250.0), ("cnn3d", 400.0)]
    assert [r["member"] for r in result.history] == ["cnn3d", "baseline", "cnn3d", "ensemble"]


def test_gradcam_of_an_ensemble_is_its_first_cnn_members() -> None:
    m1, m2 = _member(0), _member(1)
    ens = EnsembleClassifier([m1, m2])
    assert ens.explained_member() is m1
    x = _volumes(2)
    np.testing.assert_array_equal(mc.gradcam(ens, x), mc.gradcam(m1, x))


def test_noise_presets_share_one_corrupted_copy() -> None:
    """``tinyvit-noise-full`` corrupts the whole train split; ``tinyvit-noise`` keeps a
    seeded 30 % of the very same corrupted images (so their cached features are shared)."""
    from medseg.classify.data import Dataset
    from medseg.classify.ensemble import MEMBER_PRESETS, member_options
    from medseg.classify.feature_head import _train_images, corrupt_subset

    opts = mc.TrainOptions(model="ensemble", ensemble=("tinyvit-noise", "tinyvit-noise-full"),
                           seed=2, progress=False)  # fmt: skip
    part = member_options("tinyvit-noise", opts, 100.0)
    full = member_options("tinyvit-noise-full", opts, 100.0)
    assert (full.model, full.feature_corrupt_copies, full.feature_corrupt_fraction) == (
        "tinyvit",
        1,
        1.0,
    )
    assert full.feature_augment_copies == 0 and full.time_budget_s == 100.0
    assert MEMBER_PRESETS["tinyvit-noise"]["feature_corrupt_fraction"] == 0.3
    rng = np.random.default_rng(0)
    x = rng.random((10, 3, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 10)
    ds = Dataset({"train": x}, {"train": y}, "ordinal", ["a", "b", "c"], "retinamnist.npz")
    imgs_full, labels_full = _train_images(ds, full)
    assert len(labels_full[1]) == 10
    imgs_part, labels_part = _train_images(ds, part)
    idx = corrupt_subset(10, 0.3, 2, 0)
    assert len(imgs_full[1]) == 10 and len(imgs_part[1]) == len(idx) == 3
    np.testing.assert_array_equal(imgs_part[1], imgs_full[1][idx])
    np.testing.assert_array_equal(labels_part[1], y[idx])
    assert not np.array_equal(imgs_full[1], x)
