"""A label save's body is bounded by the image it labels, before it is read or parsed."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from medseg.server.encoding import rle_encode
from medseg.server.uploads import LABEL_BODY_SLACK, label_body_limit

LABELS = [{"value": 1, "name": "lesion", "color": "#ff0000"}]
# The lesion PNG is 40 x 52 = 2080 pixels: 16 bytes each + 256 KiB.
LESION_LIMIT = 16 * 2080 + 262144


def test_label_body_limit_rule() -> None:
    assert LABEL_BODY_SLACK == 262144
    limit, what = label_body_limit((40, 52), 64 * 2**20)
    assert limit == LESION_LIMIT == 295424
    assert (
        what
        == "the 295,424 bytes a label map of this 40 x 52 image can take (16 per voxel + 262,144)"
    )
    assert label_body_limit((600, 512, 512), 64 * 2**20) == (
        64 * 2**20, "the limit of 67,108,864 bytes (max_label_body_bytes)"
    )  # fmt: skip


def test_body_larger_than_the_image_can_take_is_refused_unread(make_api) -> None:
    api = make_api()
    lesion = api.image_id("lesion")
    url = f"/api/images/{lesion}/labels"
    junk = b"{" + b" " * LESION_LIMIT  # not even JSON: 413, not 422, so it was not parsed
    r = api.post(url, content=junk, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["detail"] == (
        f"label body of {LESION_LIMIT + 1:,} bytes is larger than the 295,424 bytes a label "
        "map of this 40 x 52 image can take (16 per voxel + 262,144); refused unread"
    )
    assert api.get(url).json() == []


def test_streamed_body_is_cut_at_the_limit(make_api) -> None:
    api = make_api()
    url = f"/api/images/{api.image_id('lesion')}/labels"

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        yield b'{"labels": ['
        for _ in range(400):
            yield b" " * 1024

    r = api.post(url, content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["detail"].startswith("label body larger than the 295,424 bytes a label map")
    assert r.json()["detail"].endswith("; refused before parsing it")


def test_body_within_the_image_limit_is_saved(make_api) -> None:
    api = make_api()
    url = f"/api/images/{api.image_id('lesion')}/labels"
    mask = np.zeros((40, 52), np.uint8)
    mask[10:30, 12:40] = 1
    body = {"labels": LABELS, "data": rle_encode(mask)}
    r = api.post(url, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["voxels"] == {"1": 560}
