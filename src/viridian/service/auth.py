"""The admin token (generated on first start, stored 0600 in the data folder) and the
access gate every request passes (docs/architecture.md, "Access")."""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from viridian.access import AccessControl, Principal, Target
from viridian.access.confinement import check_paths, paths_in
from viridian.access.operations import SELF
from viridian.access.route_table import (
    ACTION,
    ACTION_OPERATIONS,
    FILTERED_LISTS,
    JOB_ROUTES,
    OWN_JOBS_LIST,
    PUBLIC,
    ROUTE_AUTHORIZED,
    ROUTE_OPERATIONS,
    operation_for,
)
from viridian.access.routes import PRINCIPAL_SCOPE_KEY
from viridian.config import token_path
from viridian.errors import BadRequest, Forbidden, ViridianError
from viridian.service.errors_http import error_response, unauthorized


def load_or_create_token(data_dir: Path) -> str:
    """Return the admin token, creating it (0600, atomically) on first start."""
    path = token_path(data_dir)
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return token


def bearer_matches(header: str | None, token: str) -> bool:
    """True if an ``Authorization`` header carries ``Bearer <token>`` (constant time)."""
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer "):].strip().encode(), token.encode())


# --- the access gate (docs/architecture.md, "Access") -----------------------------------

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_CAPTURED_BODY = 64 * 1024
MAX_CONFINED_BODY = 1024 * 1024
UNCONFINED_OPERATIONS = frozenset({"vm.guest", "access.manage", SELF})
"""Operations whose paths are not host paths (guest files) or that name no files."""

CURRENT_PRINCIPAL: ContextVar[Principal | None] = ContextVar("viridian_principal",
                                                             default=None)
"""Who made the request being served (set by :class:`AccessGate`): capabilities read it
to apply a user's quota (``viridian.service.access_hooks``)."""
_CONVERTOR = re.compile(r"\{(\w+):\w+\}")
VmResolver = Callable[[str], "tuple[str, str] | None"]
JobSubmitter = Callable[[str], "str | None"]
"""``job_id`` → the user who submitted that job (None: unknown job or submitter)."""
SUBMITTER_NOTE = "the job's submitter"
OWN_JOBS_NOTE = "anyone: only the jobs they submitted"


class AccessGate:
    """ASGI middleware: authenticate every request, look its route up in THE table
    (:data:`viridian.access.route_table.ROUTE_OPERATIONS`), authorize the operation on
    its target (the VM of ``{ref}``, else the host), and audit what changes state.

    * no or unknown credentials → 401 (WebSocket: closed, HTTP 403 to the client);
    * operation not granted, or a route missing from the table (for anyone but the
      bootstrap admin token) → 403 naming the operation and target; nothing runs;
    * a job route (:data:`JOB_ROUTES`) targets the host with the job's submitter
      (``job_submitter``): the submitter needs no grant to read or cancel its own job;
    * a path no route matches goes on to the router (404/405) once authenticated;
    * ``exempt`` path prefixes (protocols that authenticate themselves) pass untouched.

    The principal is left in the ASGI scope under :data:`PRINCIPAL_SCOPE_KEY`.
    """

    def __init__(self, app: ASGIApp, access: AccessControl, routes: Callable[[], list[Any]],
                 resolve_vm: VmResolver, exempt: tuple[str, ...] = (),
                 job_submitter: JobSubmitter = lambda job_id: None) -> None:
        self.app, self.access, self.routes = app, access, routes
        self.resolve_vm, self.exempt, self.job_submitter = resolve_vm, exempt, job_submitter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        method = "WS" if scope["type"] == "websocket" else scope["method"]
        if (method, scope["path"]) in PUBLIC:
            await self.app(scope, receive, send)
            return
        principal = self.access.authenticate(_bearer(scope))
        if principal is None:
            self._audit(scope, None, "authenticate", None, "unauthenticated", 401)
            await _refuse(scope, receive, send, unauthorized())
            return
        reset = CURRENT_PRINCIPAL.set(principal)
        try:
            await self._authenticated(scope, receive, send, principal, method)
        finally:
            CURRENT_PRINCIPAL.reset(reset)

    async def _authenticated(self, scope: Scope, receive: Receive, send: Send,
                             principal: Principal, method: str) -> None:
        found = self._route(scope)
        if found is None:
            await self.app({**scope, PRINCIPAL_SCOPE_KEY: principal}, receive, send)
            return
        await self._checked(scope, receive, send, principal, method, *found)

    def _exempt(self, path: str) -> bool:
        return any(path == prefix or path.startswith(prefix + "/") for prefix in self.exempt)

    async def _checked(self, scope: Scope, receive: Receive, send: Send, principal: Principal,
                       method: str, template: str, params: dict[str, Any]) -> None:
        operation = operation_for(method, template, params)
        target = self._job_target(params) if (method, template) in JOB_ROUTES \
            else self._target(params)
        if operation is None and not principal.bootstrap:
            err: ViridianError = Forbidden(f"{method} {template} has no operation in the "
                                           "access table: only the admin token may call it")
            self._audit(scope, principal, "unknown", target, "denied", 403)
            await _refuse(scope, receive, send, err)
            return
        if (method, template) == OWN_JOBS_LIST and operation is not None and \
                not self.access.policy.allows(principal, operation, target):
            mine = principal.user
            filtered = _ListFilter(send, "jobs", lambda job: job.get("submitted_by") == mine)
            await self.app({**scope, PRINCIPAL_SCOPE_KEY: principal}, receive, filtered.send)
            return
        try:
            if operation is not None and (method, template) in ROUTE_AUTHORIZED:
                self.access.authorize_somewhere(principal, operation)  # route: the target
            elif operation is not None and (method, template) not in FILTERED_LISTS:
                self.access.authorize(principal, operation, target)
            if method != "WS" and operation not in UNCONFINED_OPERATIONS and \
                    not principal.bootstrap and self.access.confined(principal):
                receive = await self._confine(scope, receive, principal)
        except Forbidden as denied:
            self._audit(scope, principal, operation, target, "denied", 403)
            await _refuse(scope, receive, send, denied)
            return
        except BadRequest as bad:
            await _refuse(scope, receive, send, bad)
            return
        inner = {**scope, PRINCIPAL_SCOPE_KEY: principal}
        if (method, template) in FILTERED_LISTS and \
                not self.access.policy.sees_every_vm(principal):
            await self.app(inner, receive,
                           _ListFilter(send, "vms", self._visible(principal)).send)
        elif method in SAFE_METHODS or method == "WS":
            await self.app(inner, receive, send)
        else:
            await self._audited(inner, receive, send, principal, operation or "unknown",
                                target)

    async def _confine(self, scope: Scope, receive: Receive, principal: Principal) -> Receive:
        """Check every path of the query and JSON body against the principal's storage
        paths (:mod:`viridian.access.confinement`); the body is replayed to the route."""
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        found = list(paths_in(query))
        replay = receive
        if _json_body(scope):  # other bodies (uploads) are data, not settings naming files
            body, replay = await _buffered(receive)
            found += paths_in(_json_any(body))
        if found:
            roots = [p["path"] for p in self.access.storage_paths(principal.subjects())]
            check_paths(principal.user, found, roots)
        return replay

    def _visible(self, principal: Principal) -> Callable[[dict[str, Any]], bool]:
        def visible(vm: dict[str, Any]) -> bool:
            target = self.access.target(str(vm.get("name")), str(vm.get("id")))
            return self.access.policy.allows(principal, "vm.read", target)
        return visible

    async def _audited(self, scope: Scope, receive: Receive, send: Send, principal: Principal,
                       operation: str, target: Target) -> None:
        seen: dict[str, Any] = {"status": 500, "body": b""}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            elif message["type"] == "http.response.body" and \
                    len(seen["body"]) < MAX_CAPTURED_BODY:
                seen["body"] += message.get("body", b"")
            await send(message)
        try:
            await self.app(scope, receive, watch)
        finally:
            self._after(scope, principal, operation, target, seen)

    def _after(self, scope: Scope, principal: Principal, operation: str, target: Target,
               seen: dict[str, Any]) -> None:
        status = int(seen["status"])
        body = _json_object(seen["body"])
        job = body.get("id") if "state" in body and "kind" in body else None
        if operation == "vm.create" and status == 201 and not principal.bootstrap \
                and isinstance(body.get("id"), str):
            self.access.set_owner(body["id"], principal.user)
        result = "ok" if status < 400 else ("denied" if status in (401, 403) else "failed")
        self._audit(scope, principal, operation, target, result, status, job)

    def _audit(self, scope: Scope, principal: Principal | None, operation: str | None,
               target: Target | None, result: str, status: int, job: Any = None) -> None:
        client = scope.get("client")
        self.access.audit.append(
            who=principal.user if principal else None,
            realm=principal.realm if principal else None,
            source=client[0] if client else None, operation=operation,
            target=target.label() if target else None, result=result, status=status, job=job,
            request=f"{scope.get('method', 'WS')} {scope['path']}")

    def _route(self, scope: Scope) -> tuple[str, dict[str, Any]] | None:
        """(path template, path parameters) of the route that takes this request fully."""
        for route in self.routes():
            match, child = route.matches(scope)
            if match == Match.FULL:
                template = _CONVERTOR.sub(r"{\1}", str(route.path))  # {item:path} → {item}
                return template, dict(child.get("path_params", {}))
        return None

    def _job_target(self, params: dict[str, Any]) -> Target:
        """The host, carrying the submitter of the job ``{job_id}`` (policy: the submitter
        may read and cancel it)."""
        return Target(submitted_by=self.job_submitter(str(params.get("job_id"))))

    def _target(self, params: dict[str, Any]) -> Target:
        ref = params.get("ref")
        if ref is None:
            return Target()
        found = self.resolve_vm(str(ref))
        return self.access.target(found[0], found[1]) if found else Target(vm=str(ref))


class _ListFilter:
    """Rewrites a ``{key: [...]}`` answer (``vms``, ``jobs``) to the items ``visible`` lets
    through."""

    def __init__(self, send: Send, key: str, visible: Callable[[dict[str, Any]], bool]) -> None:
        self._send, self._key, self._visible = send, key, visible
        self._start: Message | None = None
        self._body = b""

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._start = message
            return
        self._body += message.get("body", b"")
        if message.get("more_body"):
            return
        assert self._start is not None
        document = _json_object(self._body)
        if self._start["status"] == 200 and isinstance(document.get(self._key), list):
            document[self._key] = [item for item in document[self._key]
                                   if isinstance(item, dict) and self._visible(item)]
            self._body = json.dumps(document).encode()
        headers = [(k, v) for k, v in self._start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(self._body)).encode()))
        await self._send({**self._start, "headers": headers})
        await self._send({"type": "http.response.body", "body": self._body})


def _bearer(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == b"authorization":
            text = value.decode("latin-1")
            return text[len("Bearer "):].strip() if text.startswith("Bearer ") else None
    return None


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole request body (at most :data:`MAX_CONFINED_BODY`) and a ``receive`` that
    hands it to the app again."""
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_CONFINED_BODY:
            raise BadRequest(f"request body over {MAX_CONFINED_BODY} bytes: too large to "
                             "check its paths; nothing was changed")
        more = bool(message.get("more_body"))
    body, given = b"".join(chunks), False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return body, replay


def _json_body(scope: Scope) -> bool:
    """Whether the route will read the body as JSON (FastAPI does when the type is absent)."""
    for key, value in scope["headers"]:
        if key.lower() == b"content-type":
            return b"json" in value.lower()
    return True


def _json_any(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        found = json.loads(body) if body else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


async def _refuse(scope: Scope, receive: Receive, send: Send, err: ViridianError) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})  # HTTP 403 to the client
        return
    headers = {"WWW-Authenticate": "Bearer"} if err.http_status == 401 else None
    await error_response(err, headers)(scope, receive, send)


def describe_operations(schema: dict[str, Any]) -> dict[str, Any]:
    """Mark every operation of an OpenAPI document with ``x-viridian-operation`` (the
    table's entry; ``vm.<action>`` routes also get ``x-viridian-action-operations``, job
    routes ``x-viridian-or``: who else may call them)."""
    for path, methods in schema.get("paths", {}).items():
        for method, operation in methods.items():
            needed = ROUTE_OPERATIONS.get((method.upper(), path))
            operation["x-viridian-operation"] = needed
            if needed == ACTION:
                operation["x-viridian-action-operations"] = dict(ACTION_OPERATIONS)
            if (method.upper(), path) in JOB_ROUTES:
                operation["x-viridian-or"] = SUBMITTER_NOTE
            if (method.upper(), path) == OWN_JOBS_LIST:
                operation["x-viridian-or"] = OWN_JOBS_NOTE
            if (method.upper(), path) in PUBLIC:
                operation["security"] = []
    return schema
