"""What every HTTP request meets at the API's edge (docs/api.md, "The error object"):

* :class:`RequestBody` — the base of every JSON request body model: a field the model
  does not declare is refused (400 naming it and the allowed fields), never ignored;
* :class:`BodyLimit` — request bodies are capped (413 with a JSON error body) before a
  route reads them; a few routes that carry file contents have larger caps;
* :func:`bounded_error` — an error body never echoes a huge value: what the client sent
  is cut to :data:`ECHO_MAX_CHARS` characters with "…".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, model_validator
from pydantic_core import PydanticCustomError
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_BODY_MAX_BYTES = 1024 * 1024
ECHO_MAX_CHARS = 100
MESSAGE_MAX_CHARS = 2000
ELLIPSIS = "…"


class RequestBody(BaseModel):
    """Base of JSON request bodies: unknown fields are an error naming the allowed ones."""

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(str(key) for key in data if key not in cls.model_fields)
            if unknown:
                raise PydanticCustomError(
                    "unknown_field", "unknown field {unknown}; allowed fields: {allowed}",
                    {"unknown": ", ".join(repr(shorten(k)) for k in unknown),
                     "allowed": ", ".join(cls.model_fields)})
        return data


def shorten(text: str, limit: int = ECHO_MAX_CHARS) -> str:
    """``text`` cut to ``limit`` characters, marked with "…" when cut."""
    return text if len(text) <= limit else text[:limit] + ELLIPSIS


ECHOED_KEYS = ("value", "name", "path", "vm", "ref")
"""Details that echo what the client sent; other details (``allowed``…) are our own text."""


def bounded(value: Any, limit: int = ECHO_MAX_CHARS) -> Any:
    """``value`` (a JSON-able error body part) with every string cut to ``limit``."""
    if isinstance(value, str):
        return shorten(value, limit)
    if isinstance(value, dict):
        return {key: bounded(item, limit) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [bounded(item, limit) for item in value]
    return value


def bounded_error(error: dict[str, Any]) -> dict[str, Any]:
    """An error object (``code``, ``message``, ``details``) safe to send: a detail that
    echoes the request (:data:`ECHOED_KEYS`) is cut to :data:`ECHO_MAX_CHARS` and so is
    its quotation in the message; any other string is cut to :data:`MESSAGE_MAX_CHARS`."""
    message = str(error.get("message", ""))
    details = error.get("details")
    details = dict(details) if isinstance(details, dict) else {}
    for key in ECHOED_KEYS:
        echoed = details.get(key)
        if isinstance(echoed, str) and len(echoed) > ECHO_MAX_CHARS:
            message = message.replace(repr(echoed), repr(shorten(echoed)))
            message = message.replace(echoed, shorten(echoed))
            details[key] = shorten(echoed)
    return {**error, "message": shorten(message, MESSAGE_MAX_CHARS),
            "details": bounded(details, MESSAGE_MAX_CHARS)}


class BodyLimit:
    """ASGI middleware: refuse HTTP request bodies over their cap with 413 and a JSON
    error body. ``larger`` lists (path regex, cap) pairs for routes that carry files;
    every other path has ``default_max`` bytes. A declared ``Content-Length`` over the
    cap is refused before anything is read; otherwise the body is read here (up to the
    cap) and handed to the route whole."""

    def __init__(self, app: ASGIApp, default_max: int = DEFAULT_BODY_MAX_BYTES,
                 larger: Sequence[tuple[str, int]] = ()) -> None:
        self.app, self.default_max = app, default_max
        self.larger = [(re.compile(pattern), cap) for pattern, cap in larger]

    def cap_for(self, path: str) -> int:
        """The body cap of requests to ``path``."""
        return next((cap for pattern, cap in self.larger if pattern.fullmatch(path)),
                    self.default_max)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.cap_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > cap:
            await too_large(cap)(scope, receive, send)
            return
        body = await _read_body(receive, cap)
        if body is None:
            await too_large(cap)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


async def _read_body(receive: Receive, cap: int) -> bytes | None:
    """The whole request body, or None once it passes ``cap`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)  # the client went away: the route sees an empty body
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def too_large(cap: int) -> JSONResponse:
    """The 413 answer for a body over ``cap`` bytes."""
    return JSONResponse({"error": {
        "code": "payload_too_large",
        "message": f"request body too large: at most {cap} bytes are accepted here "
                   f"({cap // 1024} KiB); nothing was changed",
        "details": {"max_bytes": cap}}}, status_code=413)
