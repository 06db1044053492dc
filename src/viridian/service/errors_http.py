"""The API's one error boundary (docs/api.md, "The error object"): every error that
reaches a client — a route's :class:`~viridian.errors.ViridianError`, a disk library error
(same attributes, :func:`viridian.errors.as_viridian`), FastAPI's request validation, the
bearer check, a WebSocket route's refusal — is answered from the error object here, never
from a body built by hand.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from viridian.disks.errors import DiskError
from viridian.errors import BadRequest, Unauthorized, ViridianError, as_viridian
from viridian.service.http_boundary import bounded_error

WEBSOCKET_CLOSE_BASE = 4000
"""A refused WebSocket closes with 4000 + the error's HTTP status (4404, 4409…)."""


def error_response(err: BaseException, headers: dict[str, str] | None = None) -> JSONResponse:
    """``{"error": <error object>}`` with the error's HTTP status."""
    error = as_viridian(err)
    return JSONResponse({"error": bounded_error(error.to_dict())},
                        status_code=error.http_status, headers=headers)


def unauthorized() -> Unauthorized:
    """The error of a request without the admin token."""
    return Unauthorized("missing or wrong token: send 'Authorization: Bearer <token>' (the "
                        "token is in the service's data folder, file 'token')")


def unauthorized_response() -> JSONResponse:
    """401 with ``WWW-Authenticate: Bearer`` and the error object."""
    return error_response(unauthorized(), headers={"WWW-Authenticate": "Bearer"})


def malformed(err: RequestValidationError) -> BadRequest:
    """FastAPI's validation errors as one :class:`BadRequest` naming each problem."""
    problems = "; ".join(_problem(e) for e in err.errors())
    return BadRequest(f"malformed request: {problems}",
                      errors=[{"loc": list(e["loc"]), "msg": e["msg"]} for e in err.errors()])


def _problem(error: Any) -> str:
    """``where: what`` (just ``what`` when the whole body is wrong)."""
    where = ".".join(str(p) for p in error["loc"] if p != "body")
    return f"{where}: {error['msg']}" if where else str(error["msg"])


async def refuse_websocket(websocket: WebSocket, err: BaseException) -> None:
    """Refuse an accepted WebSocket: one text frame with the error object, then a close
    whose code is 4000 + the error's HTTP status."""
    error = as_viridian(err)
    await websocket.send_text(json.dumps({"error": bounded_error(error.to_dict())}))
    await websocket.close(WEBSOCKET_CLOSE_BASE + error.http_status)


def install_error_handlers(app: FastAPI) -> None:
    """Translate every error raised by a route, once."""

    @app.exception_handler(ViridianError)
    async def viridian_error(_: Request, err: ViridianError) -> JSONResponse:
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, err: RequestValidationError) -> JSONResponse:
        return error_response(malformed(err))

    @app.exception_handler(DiskError)
    async def disk_error(_: Request, err: DiskError) -> JSONResponse:
        return error_response(err)  # the disk library's errors: same table, same answer
