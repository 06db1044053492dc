"""The management console in the browser: Hyper-V Manager and VM Connect.

Served by ``viridian serve`` on the API's own origin. :func:`install_console_routes`
adds, to the service's FastAPI app,

* the pages ``/`` (Hyper-V Manager) and ``/connect.html?vm=NAME`` (VM Connect), and the
  static files under ``/static/`` (plain ES modules; noVNC is vendored under
  ``/static/vendor/novnc``: no build tooling on the user's machine);
* ``GET /api/v1/events`` — the live event stream (:mod:`.events`);
* ``GET /api/v1/vms/{ref}/vnc`` — the VM's screen as a WebSocket (:mod:`.vnc`);
* the disk wizard routes ``/api/v1/disks/…`` (:mod:`viridian.service.disk_wizard.routes`);
* ``/login`` and ``/logout`` with cookie sessions and CSRF tokens (:mod:`.gate`): the
  admin token, or a user with its realm, password and one-time code (issue 17);
* ``/selfservice.html``: a user's granted templates, its quota, a provisioning form and
  its VMs (issue 18, self-service);
* ``/admin.html``: users, groups, roles, grants, tokens, storage paths and quotas (the
  ``/api/v1/access`` routes; shown to users with ``access.manage``).

Every page, file, API call and WebSocket needs either the admin bearer token or a console
session; the pages answer a visitor without one with a redirect to ``/login``.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from viridian.config import token_path
from viridian.console.events import ConsoleFeed, install_event_routes
from viridian.console.gate import PAGE_HEADERS, SESSION_SCOPE_KEY, ConsoleGate, UserLogin
from viridian.console.sessions import SessionStore

STATIC = Path(__file__).parent / "static"
CSRF_PLACEHOLDER = "{{csrf}}"
ERROR_PLACEHOLDER = "{{error}}"
TOKEN_PATH_PLACEHOLDER = "{{token_path}}"
REALMS_PLACEHOLDER = "{{realm_options}}"

__all__ = ["ConsoleFeed", "install_console_routes", "login_page"]


def login_page(error: str, token_file: str = "the file 'token' in the data folder",
               realms: Callable[[], list[str]] | None = None) -> str:
    """The login form, with ``error`` (plain text) shown above it when not empty and
    ``token_file`` (the token's path: all the page tells an unauthenticated visitor) in its
    hint; ``realms`` (the LDAP realms' names) fill the realm choice of the user login."""
    shown = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    page = (STATIC / "login.html").read_text().replace(ERROR_PLACEHOLDER, shown)
    names = ["", "local", "pam", *(realms() if realms else [])]
    labels = {"": "the user's own"}
    options = "".join(f'<option value="{html.escape(n)}">{html.escape(labels.get(n, n))}'
                      "</option>" for n in names)
    page = page.replace(REALMS_PLACEHOLDER, options)
    return page.replace(TOKEN_PATH_PLACEHOLDER, html.escape(token_file))


def _page(name: str, request: Request) -> HTMLResponse:
    session = request.scope.get(SESSION_SCOPE_KEY)
    csrf = html.escape(session.csrf if session else "")
    body = (STATIC / name).read_text().replace(CSRF_PLACEHOLDER, csrf)
    headers = {k.decode(): v.decode() for k, v in PAGE_HEADERS}
    return HTMLResponse(body, headers=headers)


def install_console_routes(app: FastAPI, feed: ConsoleFeed, token: str,
                           users: UserLogin | None = None,
                           realms: Callable[[], list[str]] | None = None) -> None:
    """Add the console to ``app``. Call it after the API's access gate was added, so that
    the console's gate is the outermost layer. ``users`` (``AccessControl``) enables the
    user login; ``realms`` lists the LDAP realms the login form offers."""
    install_event_routes(app, feed)

    @app.get("/", include_in_schema=False)
    @app.get("/index.html", include_in_schema=False)
    async def manager_page(request: Request) -> HTMLResponse:
        return _page("index.html", request)

    @app.get("/connect.html", include_in_schema=False)
    async def connect_page(request: Request) -> HTMLResponse:
        return _page("connect.html", request)

    @app.get("/admin.html", include_in_schema=False)
    async def admin_page(request: Request) -> HTMLResponse:
        return _page("admin.html", request)

    @app.get("/selfservice.html", include_in_schema=False)
    async def selfservice_page(request: Request) -> HTMLResponse:
        return _page("selfservice.html", request)

    app.mount("/static", StaticFiles(directory=STATIC), name="console-static")
    token_file = str(token_path(Path(feed.host_facts()["data_dir"])))
    app.add_middleware(ConsoleGate, token=token, sessions=SessionStore(), users=users,
                       login_page=functools.partial(login_page, token_file=token_file,
                                                    realms=realms))
