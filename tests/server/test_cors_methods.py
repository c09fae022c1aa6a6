"""CORS preflight for the methods the browser clients use (OHIF saves labels with PUT)."""

from __future__ import annotations

import pytest

TOOL = "http://tool.example"


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/datastore/label", "PUT"),
        ("/datastore/image", "PUT"),
        ("/api/sessions", "POST"),
        ("/api/images", "GET"),
    ],
)
def test_preflight_allows_the_methods_of_the_api(make_api, path: str, method: str) -> None:
    api = make_api(cors_origins=(TOOL,))
    pre = {
        "Origin": TOOL,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    r = api.client.options(path, headers=pre)
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == TOOL
    assert method in r.headers["access-control-allow-methods"].split(", ")


def test_preflight_refuses_unlisted_methods_and_origins(make_api) -> None:
    api = make_api(cors_origins=(TOOL,))
    r = api.client.options(
        "/datastore/label", headers={"Origin": TOOL, "Access-Control-Request-Method": "PATCH"}
    )
    assert r.status_code == 400
    r = api.client.options(
        "/datastore/label",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "PUT"},
    )
    assert "access-control-allow-origin" not in r.headers
