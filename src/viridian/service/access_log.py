"""The access log (docs/api.md, "Authentication"): one INFO line per HTTP request on the
logger ``viridian.access`` — who, method, path, status, duration in ms::

    who=token:3f2a9c1d method=POST path=/api/v1/vms status=201 ms=12.4

``who`` names the caller without revealing a credential: ``token:<fingerprint>`` for a
bearer token (the first 8 hex digits of its SHA-256; the same token always gives the same
fingerprint), ``session:<fingerprint>`` for a console session cookie, ``anonymous``
otherwise. Neither the token nor the cookie is ever written. Query strings are left out
(they may carry values an admin did not mean to log).
"""

from __future__ import annotations

import hashlib
import logging
import time
from http.cookies import CookieError, SimpleCookie

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ACCESS_LOGGER = "viridian.access"
SESSION_COOKIE = "viridian_session"

log = logging.getLogger(ACCESS_LOGGER)


def fingerprint(secret: str) -> str:
    """A short, stable, one-way name of ``secret``."""
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def caller(headers: dict[bytes, bytes]) -> str:
    """``token:<fp>``, ``session:<fp>`` or ``anonymous`` for a request's headers."""
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    if authorization.startswith("Bearer "):
        return f"token:{fingerprint(authorization[len('Bearer '):].strip())}"
    session = _session_cookie(headers.get(b"cookie", b"").decode("latin-1"))
    return f"session:{fingerprint(session)}" if session else "anonymous"


def _session_cookie(header: str) -> str | None:
    try:
        morsel = SimpleCookie(header).get(SESSION_COOKIE)
    except CookieError:
        return None
    return morsel.value if morsel and morsel.value else None


class AccessLog:
    """ASGI middleware (outermost): log every HTTP request and WebSocket session once it
    ended, with the status sent (WebSocket: 101 accepted, 403 refused)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500 if scope["type"] == "http" else 403

        async def watched_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "websocket.accept":
                status = 101
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        finally:
            log.info("who=%s method=%s path=%s status=%d ms=%.1f",
                     caller(dict(scope["headers"])), scope.get("method", "WEBSOCKET"),
                     scope["path"], status, (time.monotonic() - started) * 1000)
