"""Corrupted train copies for the ``tinyvit`` head (:func:`augment.corrupted_copy`,
``TrainOptions.feature_corrupt_copies``), with the fake encoder of ``test_features``."""

from __future__ import annotations

import numpy as np
import pytest

import medseg.classify as mc
from medseg.classify import feature_head as fh
from medseg.classify.augment import NOISE_FAMILY, corrupted_copy
from medseg.classify.corrupt import corrupt, corruption_names
from medseg.errors import InputError

from .test_features import FakeEncoder, _dataset, fake  # noqa: F401  (fixture)


def _grey(n: int) -> np.ndarray:
    """``(n, 1, 8, 8)``: image ``i`` is the constant ``(i + 1) / 10``."""
    return np.repeat((np.arange(1, n + 1, dtype=np.float32) / 10)[:, None, None, None], 64, 2
                     ).reshape(n, 1, 8, 8)  # fmt: skip


def test_noise_p_one_gives_gaussian_noise_replayable_from_the_generator() -> None:
    x = _grey(4)
    out, applied = corrupted_copy(x, np.random.default_rng(7), "retinamnist", noise_p=1.0)
    assert out.shape == x.shape and out.dtype == np.float32
    assert [name for name, _ in applied] == [NOISE_FAMILY] * 4
    # replay the draws: family coin, severity, then the corruption's own draws
    rng = np.random.default_rng(7)
    for i, (_, severity) in enumerate(applied):
        rng.random()
        assert severity == int(rng.choice((1, 2, 3, 4, 5)))
        expected = corrupt(x[i], NOISE_FAMILY, severity, rng, "retinamnist")
        assert np.array_equal(out[i], expected)
    assert not np.array_equal(out, x)  # noise changed every constant image


def test_noise_p_zero_draws_from_the_official_set_and_is_seeded() -> None:
    x = _grey(40)
    out, applied = corrupted_copy(x, np.random.default_rng(3), "retinamnist", noise_p=0.0)
    again, applied2 = corrupted_copy(x, np.random.default_rng(3), "retinamnist", noise_p=0.0)
    assert applied == applied2 and np.array_equal(out, again)
    names = {name for name, _ in applied}
    assert names == set(corruption_names("retinamnist"))  # all eight drawn in 40 images
    assert {s for _, s in applied} == {1, 2, 3, 4, 5}
    _, gen_applied = corrupted_copy(x[:6], np.random.default_rng(0), None, noise_p=0.0)
    assert gen_applied == [("brightness", 2), ("gaussian_noise", 1), ("brightness", 1),
                           ("jpeg", 5), ("contrast", 5), ("gaussian_noise", 3)]  # fmt: skip


def test_corrupted_copy_rejects_bad_noise_share() -> None:
    with pytest.raises(InputError, match="noise_p"):
        corrupted_copy(_grey(1), np.random.default_rng(0), None, noise_p=1.5)


def test_train_images_order_and_corrupted_copy_reproducible() -> None:
    ds = _dataset()
    opts = mc.TrainOptions(model="tinyvit", feature_augment_copies=1, feature_corrupt_copies=2)
    parts, labels = fh._train_images(ds, opts)
    assert len(parts) == 4 and parts[0] is ds.images["train"]
    assert all(np.array_equal(y, ds.labels["train"]) for y in labels)
    expected = fh.corrupted_train_copy(ds.images["train"], 0, 1, None, 0.5)
    assert np.array_equal(parts[3], expected)
    assert not np.array_equal(parts[2], parts[3])  # copies 0 and 1 differ


def test_corrupt_fraction_keeps_a_seeded_subset_with_its_labels() -> None:
    assert np.array_equal(fh.corrupt_subset(5, 1.0, 0, 0), np.arange(5))
    sub = fh.corrupt_subset(24, 0.25, 0, 0)
    assert len(sub) == 6 and np.array_equal(sub, np.sort(np.unique(sub)))
    assert np.array_equal(sub, fh.corrupt_subset(24, 0.25, 0, 0))
    assert not np.array_equal(sub, fh.corrupt_subset(24, 0.25, 0, 1))
    assert len(fh.corrupt_subset(3, 0.01, 0, 0)) == 1
    ds = _dataset()
    opts = mc.TrainOptions(feature_corrupt_copies=1, feature_corrupt_fraction=0.25)
    parts, labels = fh._train_images(ds, opts)
    full = fh.corrupted_train_copy(ds.images["train"], 0, 0, None, 0.5)
    assert np.array_equal(parts[1], full[sub]) and np.array_equal(
        labels[1], ds.labels["train"][sub]
    )
    with pytest.raises(InputError, match="feature_corrupt_fraction"):
        fh.corrupt_subset(4, 0.0, 0, 0)


def test_corrupted_copies_train_encode_once_and_resolve(fake: FakeEncoder) -> None:  # noqa: F811
    from medseg.classify.train import _resolve

    opts = mc.TrainOptions(model="tinyvit", max_epochs=1, progress=False, feature_corrupt_copies=1)
    first = mc.train(_dataset(), None, opts, evaluate_test=False)
    assert fake.calls == 24 * 2 + 8  # train, one corrupted copy, val
    assert first.history[0]["val_auc"] == 1.0
    mc.train(_dataset(), None, opts, evaluate_test=False)
    assert fake.calls == 56  # the seeded copy hits the cache
    assert _resolve(mc.TrainOptions(model="tinyvit"), 2).feature_corrupt_copies == 0
    assert _resolve(mc.TrainOptions(feature_corrupt_copies=3), 2).feature_corrupt_copies == 3
