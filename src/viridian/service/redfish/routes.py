"""The Redfish tree's HTTP entry: one ASGI app mounted at ``/redfish`` that normalises the
trailing slash, authenticates (:mod:`.auth`), authorizes the viridian operation a request
needs (:func:`viridian.redfish.privileges.operation_for`) on its VM or the host through
viridian's access control, audits what changes state, and dispatches to :mod:`.handlers`;
every error leaves through :func:`.http.error_response`.

Readable without credentials (DSP0266 §13.3.2): ``/redfish``, the service root,
``$metadata``, ``odata`` and a login (POST to the sessions collection)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from viridian.access import Principal
from viridian.redfish import REDFISH_ROOT
from viridian.redfish.messages import RedfishError
from viridian.redfish.privileges import SELF, operation_for, system_of
from viridian.service.auth import CURRENT_PRINCIPAL
from viridian.service.redfish.auth import redfish_user
from viridian.service.redfish.http import as_redfish, error_response

if TYPE_CHECKING:
    from viridian.service.redfish.capability import RedfishCapability

OPEN = {("GET", "/redfish"), ("GET", f"{REDFISH_ROOT}"), ("GET", f"{REDFISH_ROOT}/$metadata"),
        ("GET", f"{REDFISH_ROOT}/odata"), ("POST", f"{REDFISH_ROOT}/SessionService/Sessions")}


@dataclass
class Call:
    """One request as handlers see it."""

    method: str
    path: str
    params: dict[str, str]
    body: dict[str, Any]
    principal: Principal | None
    headers: dict[str, str]
    redfish: RedfishCapability
    head: bool = field(default=False)
    source: str = ""

    def may(self, operation: str, system_id: str | None = None) -> bool:
        """Whether the caller may ``operation`` on the system (else the host)."""
        if self.principal is None:
            return False
        return self.redfish.auth.access.policy.allows(
            self.principal, operation, self.redfish.target(system_id))

    @property
    def user(self) -> str:
        """The caller's Redfish user name ('' when anonymous)."""
        return redfish_user(self.principal) if self.principal else ""


Handler = Callable[[Call], Awaitable[Response]]
Route = tuple[str, re.Pattern[str], Handler]


class RedfishApp:
    """ASGI app of the Redfish tree; ``routes`` are (method, path pattern, handler)."""

    def __init__(self, redfish: RedfishCapability, routes: list[tuple[str, str, Handler]]):
        self.redfish = redfish
        self.routes: list[Route] = [
            (m, _pattern(p), h) for m, p, h in routes]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        path = scope["path"].rstrip("/") or "/"
        if request.method == "POST" and path.endswith("/Members"):  # DSP0266 §9.3.5.1
            path = path.removesuffix("/Members")
        response = await self._answer(request, path)
        await response(scope, receive, send)

    async def _answer(self, request: Request, path: str) -> Response:
        method = request.method
        lookup = "GET" if method == "HEAD" else method
        matches = [(m, rx.match(path), h) for m, rx, h in self.routes]
        found = [(m, mt, h) for m, mt, h in matches if mt]
        allow = ", ".join(sorted({m for m, _, _ in found} | ({"HEAD"} if any(
            m == "GET" for m, _, _ in found) else set())))
        source = request.client.host if request.client else ""
        principal: Principal | None = None
        operation, status = "", 500
        try:
            if not found:
                raise RedfishError(404, "ResourceNotFound", "resource", path)
            handler = [(mt, h) for m, mt, h in found if m == lookup]
            headers = {k.lower(): v for k, v in request.headers.items()}
            principal = await self.redfish.auth.authenticate(headers, source)
            if principal is None and (lookup, path) not in OPEN:
                raise RedfishError(401, "NoValidSession",
                                   detail="credentials needed: HTTP Basic, X-Auth-Token of a "
                                          "session, or a viridian API bearer token")
            _check_protocol(request)
            if not handler:
                raise RedfishError(405, "OperationNotAllowed",
                                   detail=f"{method} is not allowed on {path}; allowed: "
                                          f"{allow}")
            match, fn = handler[0]
            assert match is not None
            body = await _body(request) if method in ("POST", "PATCH", "PUT") else {}
            call = Call(method, path, match.groupdict(), body, principal, headers, self.redfish,
                        head=method == "HEAD", source=source)
            if principal is not None:
                operation = operation_for(lookup, path, body, call.user)
                self.redfish.authorize(principal, operation, system_of(path))
            # quotas and the like read the principal as for the JSON API (auth.py)
            reset = CURRENT_PRINCIPAL.set(principal)
            try:
                response = await fn(call)
            finally:
                CURRENT_PRINCIPAL.reset(reset)
            if "Allow" in response.headers:
                response.headers["Allow"] = allow
            status = response.status_code
            return _not_modified(request, response)
        except Exception as err:  # the one Redfish boundary: every error becomes a body
            status = as_redfish(err).status
            return error_response(err, allow or "GET, HEAD")
        finally:
            if lookup != "GET" and principal is not None:
                self.redfish.audit(principal, operation or SELF, system_of(path), source,
                                   f"{method} {path}", status)


def _pattern(path: str) -> re.Pattern[str]:
    """``/a/{name}/b`` → a regex with one named group per ``{name}`` (one segment)."""
    parts = re.split(r"\{(\w+)\}", path)
    regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)"
                    for i, part in enumerate(parts))
    return re.compile(f"^{regex}$")


def _not_modified(request: Request, response: Response) -> Response:
    """304 for a GET whose ``If-None-Match`` names the resource's current ETag."""
    tag = response.headers.get("etag")
    wanted = request.headers.get("if-none-match")
    if request.method in ("GET", "HEAD") and tag and wanted and tag in [
            w.strip() for w in wanted.split(",")]:
        return Response(status_code=304, headers={"ETag": tag, "OData-Version": "4.0"})
    return response


def _check_protocol(request: Request) -> None:
    """OData-Version other than 4.0 → 412; any ``$`` query option → 501 (none is
    supported: ProtocolFeaturesSupported says so)."""
    version = request.headers.get("odata-version")
    if version is not None and version.strip() != "4.0":
        raise RedfishError(412, "HeaderInvalid", f"OData-Version: {version}",
                           detail=f"OData-Version {version} is not supported; allowed: 4.0")
    for key in request.query_params:
        if key.startswith("$"):
            raise RedfishError(501, "QueryNotSupported",
                               detail=f"query option {key} is not supported; nothing "
                                      "is supported (see ProtocolFeaturesSupported)")


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise RedfishError(400, "MalformedJSON") from err
    if not isinstance(body, dict):
        raise RedfishError(400, "MalformedJSON", detail="the body must be a JSON object")
    return body
