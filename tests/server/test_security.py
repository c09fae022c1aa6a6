"""Auth, host/CORS policy, path traversal and checked uploads."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from medseg.data.samples import sample_path
from medseg.errors import InputError
from medseg.server.config import MiB, ServerConfig
from medseg.server.uploads import safe_filename

from .conftest import Api


def _png_bytes(shape=(20, 30)) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)).save(buf, "PNG")
    return buf.getvalue()


def _files_in(store: Path) -> set[str]:
    return {p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()}


# Dummy values for path parameters (valid for their patterns, naming nothing that exists).
PATH_DUMMIES = {"image_id": "0" * 16, "session_id": "a" * 22, "version": "1"}


def _api_routes(app: Any) -> list[tuple[str, str]]:
    """(method, URL) of every /api operation in the OpenAPI schema, path parameters filled."""
    routes = []
    for path, operations in app.openapi()["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            url = path
            for param in operation.get("parameters", []):
                if param["in"] == "path":
                    assert param["name"] in PATH_DUMMIES, f"no dummy for {param['name']} ({path})"
                    url = url.replace("{" + param["name"] + "}", PATH_DUMMIES[param["name"]])
            assert "{" not in url, url
            routes.append((method, url))
    return routes


def test_every_api_route_needs_the_token(api: Api) -> None:
    client = api.client
    routes = _api_routes(client.app)
    for known in [("get", "/api/info"), ("get", "/api/images"), ("post", "/api/images"),
                  ("post", "/api/sessions"), ("get", "/api/images/0000000000000000/slice"),
                  ("post", "/api/sessions/" + "a" * 22 + "/predict"),
                  ("get", "/api/images/0000000000000000/labels/1/export")]:  # fmt: skip
        assert known in routes, (known, routes)
    for method, url in routes:
        for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"},
                        {"Authorization": f"Basic {api.token}"}):  # fmt: skip
            r = client.request(method, url, headers=headers)
            assert r.status_code == 401, (method, url, headers, r.status_code)
            assert r.headers.get("www-authenticate") == "Bearer"
    assert client.get("/api/info", headers=api.headers).status_code == 200


def test_token_link_sets_cookie_and_cleans_the_url(api: Api) -> None:
    client = api.client
    r = client.get("/?token=not-the-token", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/" and "set-cookie" not in r.headers
    r = client.get(f"/?token={api.token}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "medseg_token_8000" in cookie
    assert client.get("/api/images").status_code == 200  # the client keeps the cookie
    page = client.get("/")
    assert page.status_code == 200 and "medseg" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"


def test_static_files_and_docs_are_public(api: Api) -> None:
    for path in ("/static/app.js", "/static/style.css", "/favicon.ico", "/openapi.json"):
        assert api.client.get(path).status_code == 200, path


def test_api_docs_pages_work_offline(api: Api) -> None:
    for page in ("/docs", "/redoc"):
        r = api.client.get(page)
        assert r.status_code == 200, page
        assert "cdn.jsdelivr" not in r.text and "/docs-static/" in r.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        r = api.client.get(f"/docs-static/{asset}")
        assert r.status_code == 200 and len(r.content) > 10_000, asset


def test_no_auth_mode(make_api) -> None:
    api = make_api(auth=False)
    assert api.token is None
    assert api.client.get("/api/images").status_code == 200
    assert api.client.get("/api/info").json()["auth"] is False


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "example.org", "::"])
def test_no_auth_refuses_non_loopback(tmp_path: Path, host: str) -> None:
    with pytest.raises(InputError, match="refuses"):
        ServerConfig(data_dir=tmp_path, host=host, auth=False)
    ServerConfig(data_dir=tmp_path, host=host, auth=True)  # with the token it is allowed


def test_foreign_host_header_is_refused(api: Api) -> None:
    r = api.client.get("/api/info", headers={**api.headers, "Host": "evil.example"})
    assert r.status_code == 400  # DNS rebinding: the page of another site cannot reach us


def test_cors_closed_by_default_and_opt_in(make_api) -> None:
    pre = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    closed = make_api()
    r = closed.client.options("/api/sessions", headers=pre)
    assert "access-control-allow-origin" not in r.headers
    r = closed.client.get("/api/info", headers={**closed.headers, "Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    opened = make_api(cors_origins=("http://tool.example",))
    r = opened.client.options("/api/sessions", headers={**pre, "Origin": "http://tool.example"})
    assert r.headers["access-control-allow-origin"] == "http://tool.example"
    r = opened.client.options("/api/sessions", headers=pre)
    assert "access-control-allow-origin" not in r.headers


TRAVERSALS = [
    "/api/images/../../../../etc/passwd",
    "/api/images/..%2F..%2F..%2Fetc%2Fpasswd",
    "/api/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd/slice",
    "/api/images/%2Fetc%2Fpasswd",
    "/api/images//etc/passwd",
    "/api/images/..%5C..%5Cwindows/labels",
    "/api/images/0123456789abcdef/labels/..%2F..%2Fsecret",
    "/api/images/0123456789abcdef/labels/1%2F..%2F..%2Fx/export",
    "/static/../pyproject.toml",
    "/static/..%2F..%2F..%2Fpyproject.toml",
    "/static/%2e%2e/%2e%2e/server/app.py",
]


@pytest.mark.parametrize("url", TRAVERSALS)
def test_path_traversal_is_refused(api: Api, url: str) -> None:
    r = api.client.get(url, headers=api.headers)
    assert r.status_code in (400, 404, 405, 422), (url, r.status_code)
    assert b"root:" not in r.content and b"[build-system]" not in r.content
    assert b"create_app" not in r.content


def test_upload_valid_png_and_traversal_names_stay_inside(api: Api, store: Path) -> None:
    before = _files_in(store)
    for name in ("../../evil.png", "/etc/cron.d/evil.png", "..\\..\\evil.png", "%2e%2e%2fevil.png"):
        r = api.post("/api/images", files={"files": (name, _png_bytes(), "image/png")})
        assert r.status_code == 201, r.text
        assert r.json()["name"].startswith("uploads/") and ".." not in r.json()["name"]
    new = _files_in(store) - before
    assert len(new) == 4 and all(p.startswith("uploads/") for p in new)
    assert not (store.parent / "evil.png").exists()
    uploaded = api.image_id("uploads/evil.png")
    detail = api.get(f"/api/images/{uploaded}").json()
    assert detail["shape"] == [20, 30]
    assert safe_filename("../../a b?.png") == "a_b_.png"
    with pytest.raises(InputError):
        safe_filename("../..")


def test_upload_dicom_series(api: Api) -> None:
    data = sample_path().read_bytes()
    r = api.post("/api/images", files=[("files", ("slice1.dcm", data, "application/dicom"))])
    assert r.status_code == 201 and r.json()["dicom"]
    assert r.json()["name"].startswith("uploads/slice1/")


@pytest.mark.parametrize(
    ("name", "content", "status", "text"),
    [
        ("notes.txt", b"hello", 415, "unsupported"),
        ("script.html", b"<script>", 415, "unsupported"),
        ("fake.png", b"GIF89a" + b"\0" * 100, 415, "signature"),
        ("fake.nii", b"\0" * 400, 415, "signature"),
        ("corrupt.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, 400, "decoded"),
        ("corrupt.nii.gz", b"\x1f\x8b" + b"garbage" * 20, 400, "decoded"),
        ("empty.png", b"", 400, "empty"),
    ],
)
def test_bad_uploads_are_refused_and_leave_nothing(
    api: Api, store: Path, name: str, content: bytes, status: int, text: str
) -> None:
    before = _files_in(store)
    r = api.post("/api/images", files={"files": (name, content, "application/octet-stream")})
    assert r.status_code == status, r.text
    assert text in r.text
    assert _files_in(store) == before  # staging files are removed


def test_too_large_uploads(make_api, store: Path) -> None:
    api = make_api(max_upload_bytes=MiB)
    before = _files_in(store)
    big = _png_bytes((1100, 1100))  # compresses well: a valid PNG over 1 MiB is needed
    big = big + b"\0" * (MiB + 10 - len(big)) if len(big) < MiB + 10 else big
    r = api.post("/api/images", files={"files": ("big.png", big, "image/png")})
    assert r.status_code == 413
    # The body limit answers 413 before parsing (Content-Length far over the limit).
    huge = b"\0" * (18 * MiB)
    r = api.post("/api/images", content=huge, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 413 and "too large" in r.text
    assert _files_in(store) == before
    several = [("files", ("a.png", _png_bytes(), "image/png")),
               ("files", ("b.png", _png_bytes(), "image/png"))]  # fmt: skip
    assert api.post("/api/images", files=several).status_code == 415
