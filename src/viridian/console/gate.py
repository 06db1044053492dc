"""The console's door: login, logout, and turning a browser session into API access.

:class:`ConsoleGate` is the outermost ASGI middleware. It never weakens the bearer-token
API: a request that carries an ``Authorization`` header is passed on untouched and judged
by the API's own ``BearerAuth``. A request without one is let in only with a live session
cookie, and then

* a state-changing HTTP request (anything but GET/HEAD/OPTIONS) must carry the session's
  CSRF token in ``X-CSRF-Token`` and, when the browser sends ``Origin``, come from this
  origin (OWASP "synchronizer token" plus origin verification);
* a WebSocket upgrade must come from this origin (``Origin`` is required for sessions:
  browsers always send it; RFC 6455 §10.2);

after which the request is forwarded with the session's credential as its bearer: the admin
token for an admin-token login, the user's own login session (``vss_…``, from
``AccessControl.login``: realm, password, TOTP) for a user login. With
no session, a console page is answered with a redirect to the login page and anything else
reaches ``BearerAuth``, which refuses it (HTTP 401, WebSocket HTTP 403).

The session cookie is ``HttpOnly; SameSite=Strict; Path=/`` (plus ``Secure`` behind
HTTPS): scripts cannot read it and other sites cannot make the browser send it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any, Protocol
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from viridian.console.sessions import Session, SessionStore
from viridian.errors import Forbidden, MethodNotAllowed, Unauthorized, ViridianError

COOKIE = "viridian_session"
CSRF_HEADER = b"x-csrf-token"
LOGIN_PATH, LOGOUT_PATH = "/login", "/logout"
PAGES = frozenset({"/", "/index.html", "/connect.html", "/admin.html", "/selfservice.html"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_SCOPE_KEY = "viridian.session"
MAX_LOGIN_BODY = 4096
FAILED_LOGIN_DELAY_S = 0.25
PAGE_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
     b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]

LoginPage = Callable[[str], str]


class UserLogin(Protocol):
    """The part of ``viridian.access.AccessControl`` the console's user login needs."""

    def login(self, user: str, password: str, realm: str | None = None,
              totp: str | None = None, source: str = "") -> dict[str, Any]: ...

    def end_session(self, bearer: str) -> None: ...

    def authenticate(self, bearer: str | None) -> object | None: ...


class ConsoleGate:
    """ASGI middleware: cookie sessions for the console in front of the bearer-token API."""

    def __init__(self, app: ASGIApp, token: str, sessions: SessionStore,
                 login_page: LoginPage, users: UserLogin | None = None) -> None:
        self.app, self.token, self.sessions, self.login_page = app, token, sessions, login_page
        self.users = users

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if scope["type"] == "http" and scope["path"] in (LOGIN_PATH, LOGOUT_PATH):
            await self._session_door(scope, receive, send, headers)
            return
        if b"authorization" in headers:
            if scope["type"] == "websocket" and not _origin_allowed(scope, headers, False):
                await _refuse_websocket(send)
                return
            await self.app(scope, receive, send)
            return
        session = self._live_session(headers)
        if session is None:
            if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] in PAGES:
                await _redirect(send, LOGIN_PATH)
                return
            await self.app(scope, receive, send)  # BearerAuth refuses it
            return
        await self._with_session(scope, receive, send, headers, session)

    def _live_session(self, headers: dict[bytes, bytes]) -> Session | None:
        """The cookie's session, ended here too when the user's own access session ended
        (expired, logged out, user removed): the browser is sent to the login page."""
        session = self.sessions.lookup(_cookie(headers))
        if session is not None and session.bearer and self.users is not None and \
                self.users.authenticate(session.bearer) is None:
            self.sessions.end(session.id)
            return None
        return session

    async def _with_session(self, scope: Scope, receive: Receive, send: Send,
                            headers: dict[bytes, bytes], session: Session) -> None:
        if scope["type"] == "websocket":
            if not _origin_allowed(scope, headers, True):
                await _refuse_websocket(send)
                return
        elif scope["method"] not in SAFE_METHODS:
            problem = _csrf_problem(scope, headers, session)
            if problem:
                await _error(send, Forbidden(problem))
                return
        forwarded = dict(scope)
        bearer = session.bearer or self.token
        forwarded["headers"] = [*scope["headers"],
                                (b"authorization", f"Bearer {bearer}".encode())]
        forwarded[SESSION_SCOPE_KEY] = session
        await self.app(forwarded, receive, send)

    # --- /login and /logout -----------------------------------------------------------

    async def _session_door(self, scope: Scope, receive: Receive, send: Send,
                            headers: dict[bytes, bytes]) -> None:
        method = scope["method"]
        if scope["path"] == LOGOUT_PATH:
            await self._logout(scope, send, headers)
        elif method == "GET":
            await _html(send, 200, self.login_page(""))
        elif method == "POST":
            await self._login(scope, receive, send, headers)
        else:
            await _error(send, MethodNotAllowed(
                f"{method} is not allowed on {scope['path']}; allowed: GET, POST"))

    async def _login(self, scope: Scope, receive: Receive, send: Send,
                     headers: dict[bytes, bytes]) -> None:
        if b"origin" in headers and not _same_origin(scope, headers):
            await _error(send, Forbidden("login refused: the form came from another site"))
            return
        form = parse_qs((await _read_body(receive, MAX_LOGIN_BODY)).decode("utf-8", "replace"))
        if "user" in form and self.users is not None:
            await self._user_login(scope, send, form)
            return
        presented = (form.get("token") or [""])[0].strip()
        if not presented or not hmac.compare_digest(presented.encode(), self.token.encode()):
            await asyncio.sleep(FAILED_LOGIN_DELAY_S)
            await _html(send, 401, self.login_page(
                "That is not the admin token. It is in the file 'token' of the service's "
                "data folder (for root: /var/lib/viridian/token)."))
            return
        session = self.sessions.create()
        await _redirect(send, "/", [(b"set-cookie", _cookie_header(scope, session.id))])

    async def _user_login(self, scope: Scope, send: Send, form: dict[str, list[str]]) -> None:
        """A user's login (realm, password, one-time code) through the access store."""
        assert self.users is not None
        field = {k: (form.get(k) or [""])[0] for k in ("user", "password", "realm", "totp")}
        client = scope.get("client")
        try:
            opened = self.users.login(field["user"].strip(), field["password"],
                                      field["realm"] or None, field["totp"].strip() or None,
                                      client[0] if client else "")
        except Unauthorized as refused:
            await asyncio.sleep(FAILED_LOGIN_DELAY_S)
            await _html(send, 401, self.login_page(refused.message))
            return
        session = self.sessions.create(bearer=str(opened["token"]), user=str(opened["user"]))
        await _redirect(send, "/", [(b"set-cookie", _cookie_header(scope, session.id))])

    async def _logout(self, scope: Scope, send: Send, headers: dict[bytes, bytes]) -> None:
        session = self.sessions.lookup(_cookie(headers))
        if scope["method"] != "POST" or session is None:
            why = "log out with POST while logged in"
            await _error(send, Unauthorized(why) if session is None else MethodNotAllowed(why))
            return
        problem = _csrf_problem(scope, headers, session)
        if problem:
            await _error(send, Forbidden(problem))
            return
        self.sessions.end(session.id)
        if session.bearer and self.users is not None:
            self.users.end_session(session.bearer)
        expired = _cookie_header(scope, "", max_age=0)
        await send({"type": "http.response.start", "status": 204,
                    "headers": [(b"set-cookie", expired)]})
        await send({"type": "http.response.body", "body": b""})


# --- request facts --------------------------------------------------------------------


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope["headers"]}


def _cookie(headers: dict[bytes, bytes]) -> str | None:
    raw = headers.get(b"cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw.decode("latin-1"))
    except Exception:  # a malformed Cookie header is the same as none
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel else None


def own_origin(scope: Scope, headers: dict[bytes, bytes]) -> str:
    """``scheme://host[:port]`` this request was sent to (from its Host header)."""
    secure = scope.get("scheme") in ("https", "wss")
    host = headers.get(b"host", b"").decode("latin-1").lower()
    return f"{'https' if secure else 'http'}://{host}"


def _same_origin(scope: Scope, headers: dict[bytes, bytes]) -> bool:
    origin = headers.get(b"origin", b"").decode("latin-1").lower()
    return bool(headers.get(b"host")) and origin == own_origin(scope, headers)


def _origin_allowed(scope: Scope, headers: dict[bytes, bytes], required: bool) -> bool:
    """A browser's ``Origin`` must be ours; only non-browser clients may omit it."""
    if b"origin" not in headers:
        return not required
    return _same_origin(scope, headers)


def _csrf_problem(scope: Scope, headers: dict[bytes, bytes], session: Session) -> str:
    if b"origin" in headers and not _same_origin(scope, headers):
        return "request refused: it came from another site (Origin does not match)"
    if not session.csrf_matches(headers.get(CSRF_HEADER, b"").decode("latin-1")):
        return ("request refused: missing or wrong CSRF token; a console session must send "
                "its token in the X-CSRF-Token header (reload the page to get it)")
    return ""


def _cookie_header(scope: Scope, value: str, max_age: int | None = None) -> bytes:
    parts = [f"{COOKIE}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if scope.get("scheme") == "https":
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts).encode()


async def _read_body(receive: Receive, limit: int) -> bytes:
    body = b""
    while True:
        message: Message = await receive()
        body += bytes(message.get("body", b""))
        if len(body) > limit or not message.get("more_body"):
            return body[:limit]


# --- answers ---------------------------------------------------------------------------


async def _send(send: Send, status: int, content_type: bytes, body: bytes,
                extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
               *PAGE_HEADERS, *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _html(send: Send, status: int, page: str) -> None:
    await _send(send, status, b"text/html; charset=utf-8", page.encode())


async def _error(send: Send, err: ViridianError) -> None:
    """The error object of ``err`` with its HTTP status (docs/api.md, "The error object")."""
    body = {"error": err.to_dict()}
    await _send(send, err.http_status, b"application/json", json.dumps(body).encode())


async def _redirect(send: Send, location: str,
                    extra: list[tuple[bytes, bytes]] | None = None) -> None:
    await _send(send, 303, b"text/plain; charset=utf-8", b"",
                [(b"location", location.encode()), *(extra or [])])


async def _refuse_websocket(send: Send) -> None:
    await send({"type": "websocket.close", "code": 1008})  # the client sees HTTP 403
