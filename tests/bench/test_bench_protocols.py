"""Named protocols and the benchmark configuration."""

from __future__ import annotations

import json

import pytest

from medseg.bench.protocols import PROTOCOL_NAMES, BenchConfig, Protocol, make_protocol
from medseg.errors import InputError


def test_named_protocols() -> None:
    got = {n: make_protocol(n, max_interactions=7, box_jitter=0.1) for n in PROTOCOL_NAMES}
    assert (got["box"].max_interactions, got["box"].box_jitter) == (1, 0.1)
    assert (got["clicks"].initial, got["clicks"].correction) == ("click", "click")
    assert (got["box+clicks"].initial, got["box+clicks"].max_interactions) == ("box", 7)
    assert got["scribble"].correction == "scribble"
    cvpr24, cvpr25 = got["cvpr24"], got["cvpr25"]
    assert (cvpr24.max_interactions, cvpr24.box_jitter, cvpr24.nsd_min_dice) == (1, 0.0, 0.2)
    assert (cvpr25.max_interactions, cvpr25.box_jitter, cvpr25.challenge) == (6, 0.0, "cvpr25")
    assert (cvpr25.click.error_regions, cvpr25.click.tie_break) == ("combined", "random")
    assert cvpr24.nsd_tolerance_mm == cvpr25.nsd_tolerance_mm == 2.0


def test_config_serialises_to_json() -> None:
    cfg = BenchConfig(models=("a",), protocols=(make_protocol("cvpr25"),), seed=3)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["protocols"][0]["click"] == {"error_regions": "combined", "tie_break": "random"}
    assert d["seed"] == 3 and d["noc_thresholds"] == [0.85, 0.9] and d["noc_cap"] == 20


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: make_protocol("lasso"), "unknown protocol"),
        (lambda: make_protocol("clicks", max_interactions=0), "max interactions"),
        (lambda: make_protocol("box", box_jitter=2.0), "jitter"),
        (lambda: Protocol("x", "box", "none", 3), "no corrections"),
        (lambda: Protocol("x", "lasso", "none", 1), "initial"),
        (lambda: BenchConfig(models=(), protocols=(make_protocol("box"),)), "model"),
        (lambda: BenchConfig(models=("a",), protocols=()), "protocol"),
        (lambda: BenchConfig(models=("a",), protocols=(make_protocol("box"),) * 2), "repeat"),
        (lambda: BenchConfig(models=("a",), protocols=(make_protocol("clicks"),), volume=True),
         "volume"),
        (lambda: BenchConfig(models=("a",), protocols=(make_protocol("box"),), limit=0), "limit"),
        (lambda: BenchConfig(models=("a",), protocols=(make_protocol("box"),), noc_metric="x"),
         "NoC metric"),
    ],
)  # fmt: skip
def test_bad_settings(build, message: str) -> None:
    with pytest.raises(InputError, match=message):
        build()
