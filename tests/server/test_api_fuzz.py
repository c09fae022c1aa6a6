"""Schemathesis over the server's OpenAPI schema: every route, with and without the token.

Requests are generated from ``/openapi.json`` (valid and invalid bodies, paths and queries,
20 examples per operation, derandomized so CI sees the same requests every run) and sent to
the ASGI app in-process on a fresh copy of the test datastore. No response may be a server
error (the ``/train`` routes of the MONAI Label API answer a documented 501 "not offered",
which is allowed), and responses must match the documented schema and content type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import content_type_conformance, response_schema_conformance

from .conftest import BASE_URL, Api

pytestmark = pytest.mark.slow

FUZZ = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _schema(target: Api) -> Any:
    """The app's own schema, fetched through the test client (the app checks ``Host``)."""
    return schemathesis.openapi.from_dict(target.client.get("/openapi.json").json())


def _check_no_server_error(case: Any, response: Any) -> None:
    status = response.status_code
    summary = (case.operation.definition.raw or {}).get("summary", "")
    not_offered = status == 501 and "Not offered" in summary
    assert status < 500 or not_offered, (
        f"{case.method} {case.formatted_path} -> {status}: {response.text[:300]}"
    )


def _run(case: Any, target: Api, headers: dict[str, str]) -> None:
    """Send ``case`` through the app's TestClient (``BASE_URL``) and check the answer."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=headers)
    kwargs.pop("timeout", None)
    response = target.client.request(**kwargs)
    _check_no_server_error(case, response)
    if response.status_code < 400:  # error bodies are FastAPI's {"detail": ...}
        case.validate_response(
            response, checks=[response_schema_conformance, content_type_conformance]
        )


def _fuzz_every_operation(target: Api, headers: dict[str, str]) -> int:
    """Run ``FUZZ`` examples of every operation; returns how many operations ran.

    Random ids only reach the 404 of a route, so every case whose path names an image or a
    session is sent a second time with a real image id (the phantom) and session id.
    """
    real = {"image_id": target.image_id("phantom")}
    real["session_id"] = target.session(real["image_id"])
    operations = [result.ok() for result in _schema(target).get_all_operations()]
    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            _run(case, target, headers)
            params = case.path_parameters or {}
            if any(name in params for name in real):
                case.path_parameters = {**params, **{k: v for k, v in real.items() if k in params}}
                _run(case, target, headers)

        check()
    return len(operations)


@pytest.mark.parametrize("with_token", [True, False], ids=["token", "no-token"])
def test_every_route_answers_without_server_error(
    make_api: Callable[..., Api], with_token: bool
) -> None:
    target = make_api()
    headers = {"Authorization": f"Bearer {target.token}"} if with_token else {}
    assert _fuzz_every_operation(target, headers) >= 30
