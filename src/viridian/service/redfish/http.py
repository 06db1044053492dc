"""Redfish's HTTP conventions, applied once for every answer (DSP0266 §8): OData headers,
ETags, ``Allow``, ``Link`` to the JSON schema, and error bodies from the Base registry
(:class:`~viridian.redfish.messages.RedfishError`; viridian's own errors are translated
here too)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from starlette.responses import Response

from viridian.errors import ViridianError
from viridian.redfish.messages import RedfishError

JSON_TYPE = "application/json;charset=utf-8"
BASE_HEADERS = {"OData-Version": "4.0", "Cache-Control": "no-cache"}


def etag_of(body: dict[str, Any]) -> str:
    """A weak ETag of a resource's content (without its own ``@odata.etag``)."""
    content = {k: v for k, v in body.items() if k != "@odata.etag"}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:20]
    return f'W/"{digest}"'


def json_response(body: dict[str, Any], status: int = 200, allow: str = "GET, HEAD",
                  headers: dict[str, str] | None = None, head: bool = False) -> Response:
    extra: dict[str, str] = {}
    if "@odata.id" in body and "Members" not in body and status < 300:
        tag = etag_of(body)
        body = {**body, "@odata.etag": tag}
        extra["ETag"] = tag
    if "@odata.type" in body:
        schema = body["@odata.type"].lstrip("#").split(".")[0]
        extra["Link"] = (f"<http://redfish.dmtf.org/schemas/v1/{schema}.json>; "
                         'rel=describedby')
    content = b"" if head else json.dumps(body).encode()
    response = Response(content, status, media_type=JSON_TYPE,
                        headers={**BASE_HEADERS, "Allow": allow, **extra, **(headers or {})})
    if head:
        response.headers["Content-Length"] = str(len(json.dumps(body).encode()))
    return response


def as_redfish(err: BaseException) -> RedfishError:
    """Translate viridian's errors (and anything else) into a Redfish error, once."""
    if isinstance(err, RedfishError):
        return err
    if isinstance(err, ViridianError):
        ids = {404: ("ResourceNotFound", "resource", err.details.get("vm", "")),
               409: ("ResourceInUse",), 401: ("NoValidSession",),
               403: ("InsufficientPrivilege",),
               400: ("GeneralError",)}
        entry = ids.get(err.http_status, ("InternalError",))
        return RedfishError(err.http_status, entry[0], *entry[1:], detail=err.message)
    return RedfishError(500, "InternalError")


def error_response(err: BaseException, allow: str = "GET, HEAD") -> Response:
    red = as_redfish(err)
    headers = {**BASE_HEADERS, "Allow": allow}
    if red.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="viridian Redfish"'
    return Response(json.dumps(red.body()).encode(), red.status, media_type=JSON_TYPE,
                    headers=headers)
