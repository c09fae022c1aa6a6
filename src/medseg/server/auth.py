"""Access token, request-size limit and security headers.

The token is checked on every ``/api`` request, compared in constant time
(:func:`hmac.compare_digest`). Clients send it as ``Authorization: Bearer <token>``; the
browser app gets it once from the URL printed at start-up (``/?token=...``), which the
server moves into an ``HttpOnly``, ``SameSite=Strict`` cookie and removes from the address
bar. The cookie name contains the port, so two servers on one machine do not clash.

Cookies are sent by the browser on its own, also to requests another page makes (and
``SameSite`` does not separate two ports of ``127.0.0.1``). So a write (POST, PUT, PATCH,
DELETE) authenticated by the cookie, or made without auth, is refused with 403 when its
``Origin`` (or, without one, its ``Referer``) is not the server's own origin. Requests
with the bearer header are not checked: a page cannot add that header to a foreign server.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

__all__ = [
    "new_token",
    "cookie_name",
    "token_matches",
    "token_dependency",
    "same_origin",
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


_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_of(url: str) -> str | None:
    """``scheme://host:port`` of ``url`` (lower case, default port filled in), or None."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port or _DEFAULT_PORTS[parts.scheme]}".lower()


def same_origin(request: Request, allowed: tuple[str, ...] = ()) -> bool:
    """True when the request's ``Origin`` (else ``Referer``) is the server's own origin
    (the scheme and ``Host`` the request was sent to) or one of ``allowed``; requests with
    neither header (command-line clients) count as same-origin. ``Origin: null`` does not."""
    claimed = request.headers.get("origin")
    if claimed is None:
        claimed = request.headers.get("referer")
        if claimed is None:
            return True
    origin = _origin_of(claimed)
    if origin is None:
        return False
    own = _origin_of(f"{request.url.scheme}://{request.headers.get('host', '')}")
    return origin == own or origin in {_origin_of(a) for a in allowed}


def _refuse_cross_origin(request: Request, allowed: tuple[str, ...]) -> None:
    if request.method.upper() in _WRITES and not same_origin(request, allowed):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "cross-origin request refused: this write did not come from the medseg app's own "
            "page (Origin/Referer differ); scripts should send 'Authorization: Bearer <token>'",
        )


def token_dependency(
    token: str | None, port: int, allowed_origins: tuple[str, ...] = ()
) -> Callable[..., Any]:
    """A FastAPI dependency accepting the bearer header or the cookie.

    Writes authenticated by the cookie, or made without auth (``token`` None), must come
    from the server's own origin or one of ``allowed_origins`` (see the module docstring).
    """
    bearer = HTTPBearer(auto_error=False, description="the token printed by `medseg serve`")
    cookie = APIKeyCookie(name=cookie_name(port), auto_error=False)
    allowed = tuple(allowed_origins)

    async def require_token(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
        cookie_value: str | None = Depends(cookie),
    ) -> None:
        presented = credentials.credentials if credentials is not None else None
        if token is not None and token_matches(presented, token):
            return
        if token is None or token_matches(cookie_value, token):
            _refuse_cross_origin(request, allowed)
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
