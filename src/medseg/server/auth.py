"""Access token, request-size limit and security headers.

The token is checked on every ``/api`` request, compared in constant time
(:func:`hmac.compare_digest`). Clients send it as ``Authorization: Bearer <token>``; the
browser app gets it once from the URL printed at start-up (``/?token=...``), which the
server moves into an ``HttpOnly``, ``SameSite=Strict`` cookie and removes from the address
bar. The cookie name contains the port, so two servers on one machine do not clash.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, HTTPException, status
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

__all__ = [
    "new_token",
    "cookie_name",
    "token_matches",
    "token_dependency",
    "BodySizeLimit",
    "SecurityHeaders",
]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def new_token() -> str:
    """A fresh random access token (192 bits, URL-safe)."""
    return secrets.token_urlsafe(24)


def cookie_name(port: int) -> str:
    return f"medseg_token_{int(port)}"


def token_matches(presented: str | None, token: str) -> bool:
    """Constant-time comparison of a presented token with the server's."""
    if not presented:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), token.encode("utf-8"))


def token_dependency(token: str | None, port: int) -> Callable[..., Any]:
    """A FastAPI dependency accepting the bearer header or the cookie (no-op without auth)."""
    bearer = HTTPBearer(auto_error=False, description="the token printed by `medseg serve`")
    cookie = APIKeyCookie(name=cookie_name(port), auto_error=False)

    async def require_token(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
        cookie_value: str | None = Depends(cookie),
    ) -> None:
        if token is None:
            return
        presented = credentials.credentials if credentials is not None else None
        if token_matches(presented, token) or token_matches(cookie_value, token):
            return
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong access token: open the URL `medseg serve` printed, or send "
            "'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )

    return require_token


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    """ASGI middleware answering 413 to request bodies larger than ``max_bytes``.

    Checks ``Content-Length`` first and counts the bytes actually received (chunked
    uploads), so an oversized upload is refused before it is parsed or stored.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def _reject(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body too large (limit {self.max_bytes} bytes)"})
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body.encode()})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._reject(send)
            return
        received = 0
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)


_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# The app uses only its own scripts and styles; images come from blob: URLs.
_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class SecurityHeaders:
    """ASGI middleware adding ``nosniff``, ``no-referrer`` (the URL may hold the token),
    ``DENY`` framing and, for the browser app (not ``/docs``), a strict CSP."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        app_page = path == "/" or path.startswith("/static/")

        async def add_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                extra = dict(_HEADERS)
                if app_page:
                    extra["Content-Security-Policy"] = _CSP
                headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, add_headers)
