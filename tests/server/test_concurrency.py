"""Several clients at once: sessions never mix masks; the embedding cache stays bounded."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from medseg.data.samples import SAMPLE_CT_BOX
from medseg.server.encoding import rle_decode
from medseg.server.sessions import PredictorPool, SessionManager

from .conftest import Api, phantom

# (image, box) per simulated user: two users on the same CT with different boxes.
JOBS = [
    ("sample_ct", list(SAMPLE_CT_BOX)),
    ("sample_ct", [20, 70, 110, 120]),
    ("lesion", [10, 8, 42, 32]),
]


def _mask(response: dict) -> np.ndarray:
    m = response["mask"]
    return rle_decode(m["shape"], m["values"], m["counts"]).astype(bool)


def _refine(api: Api, sid: str, box: list[float], mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    body = {"box": box, "points": [[float(xs.mean()), float(ys.mean())]], "point_labels": [0],
            "mask_input": "previous"}  # fmt: skip
    r = api.post(f"/api/sessions/{sid}/predict", json=body)
    assert r.status_code == 200, r.text
    return _mask(r.json())


@pytest.mark.slow
def test_concurrent_sessions_do_not_mix(shared_api: Api) -> None:
    api = shared_api
    ids = {name: api.image_id(name) for name, _ in JOBS}
    reference = []
    for name, box in JOBS:  # sequential reference: first mask and refined mask per user
        sid = api.session(ids[name])
        first = _mask(api.post(f"/api/sessions/{sid}/predict", json={"box": box}).json())
        reference.append((first, _refine(api, sid, box, first)))

    def user(job: int) -> tuple[np.ndarray, np.ndarray]:
        name, box = JOBS[job % len(JOBS)]
        sid = api.session(ids[name])
        first = _mask(api.post(f"/api/sessions/{sid}/predict", json={"box": box}).json())
        return first, _refine(api, sid, box, first)

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(user, range(6)))
    for job, (first, refined) in enumerate(results):
        ref_first, ref_refined = reference[job % len(JOBS)]
        assert np.array_equal(first, ref_first), job
        assert np.array_equal(refined, ref_refined), job
    assert not np.array_equal(reference[0][0], reference[1][0])  # the users did differ


def test_predictor_pool_is_a_bounded_lru(model) -> None:
    volume = phantom()  # volumes are embedded per slice on demand: no encoder run here
    pool = PredictorPool(model, max_entries=2, slice_cache=4)
    a = pool.get("a" * 16, "axial", lambda: volume)
    assert pool.get("a" * 16, "axial", lambda: volume) is a  # cached
    pool.get("b" * 16, "axial", lambda: volume)
    pool.get("a" * 16, "axial", lambda: volume)  # a is now the most recently used
    pool.get("c" * 16, "axial", lambda: volume)
    assert len(pool) == 2
    assert pool.get("a" * 16, "axial", lambda: volume) is a  # b was dropped, not a
    assert a.predictor.cache_info().maxsize == 4


def test_sessions_are_bounded(make_api) -> None:
    api = make_api(max_sessions=2)
    ct = api.image_id("sample_ct")
    first = api.session(ct)
    api.session(ct)
    api.session(ct)
    assert len(api.client.app.state.medseg.sessions) == 2
    assert api.get(f"/api/sessions/{first}").status_code == 404  # least recently used closed


def test_session_manager_lru_order() -> None:
    mgr = SessionManager(2)
    a, b = mgr.create("a" * 16), mgr.create("b" * 16)
    mgr.get(a.id)  # a is now the most recently used
    mgr.create("c" * 16)
    assert mgr.get(a.id) is a
    assert len(mgr) == 2
    try:
        mgr.get(b.id)
    except LookupError:
        pass
    else:  # pragma: no cover
        raise AssertionError("b should have been closed")
