"""The management console in the browser: Hyper-V Manager and VM Connect.

Served by ``viridian serve`` on the API's own origin. :func:`install_console_routes`
adds, to the service's FastAPI app,

* the pages ``/`` (Hyper-V Manager) and ``/connect.html?vm=NAME`` (VM Connect), and the
  static files under ``/static/`` (plain ES modules; noVNC is vendored under
  ``/static/vendor/novnc``: no build tooling on the user's machine);
* ``GET /api/v1/events`` — the live event stream (:mod:`.events`);
* ``GET /api/v1/vms/{ref}/vnc`` — the VM's screen as a WebSocket (:mod:`.vnc`);
* the disk wizard routes ``/api/v1/disks/…`` (:mod:`viridian.service.disks_api`);
* ``/login`` and ``/logout`` with cookie sessions and CSRF tokens (:mod:`.gate`).

Every page, file, API call and WebSocket needs either the admin bearer token or a console
session; the pages answer a visitor without one with a redirect to ``/login``.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from viridian.console.events import install_event_routes
from viridian.console.gate import PAGE_HEADERS, SESSION_SCOPE_KEY, ConsoleGate
from viridian.console.sessions import SessionStore
from viridian.console.vnc import install_vnc_routes
from viridian.service.disks_api import install_disk_routes

STATIC = Path(__file__).parent / "static"
CSRF_PLACEHOLDER = "{{csrf}}"
ERROR_PLACEHOLDER = "{{error}}"

__all__ = ["install_console_routes", "login_page"]


def login_page(error: str) -> str:
    """The login form, with ``error`` (plain text) shown above it when not empty."""
    shown = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return (STATIC / "login.html").read_text().replace(ERROR_PLACEHOLDER, shown)


def _page(name: str, request: Request) -> HTMLResponse:
    session = request.scope.get(SESSION_SCOPE_KEY)
    csrf = html.escape(session.csrf if session else "")
    body = (STATIC / name).read_text().replace(CSRF_PLACEHOLDER, csrf)
    headers = {k.decode(): v.decode() for k, v in PAGE_HEADERS}
    return HTMLResponse(body, headers=headers)


def install_console_routes(app: FastAPI, manager: Any, token: str) -> None:
    """Add the console to ``app``. Call it after the API's ``BearerAuth`` middleware was
    added, so that the console's gate is the outermost layer."""
    install_event_routes(app, manager)
    install_vnc_routes(app, manager)
    install_disk_routes(app, manager)

    @app.get("/", include_in_schema=False)
    @app.get("/index.html", include_in_schema=False)
    async def manager_page(request: Request) -> HTMLResponse:
        return _page("index.html", request)

    @app.get("/connect.html", include_in_schema=False)
    async def connect_page(request: Request) -> HTMLResponse:
        return _page("connect.html", request)

    app.mount("/static", StaticFiles(directory=STATIC), name="console-static")
    app.add_middleware(ConsoleGate, token=token, sessions=SessionStore(),
                       login_page=login_page)
